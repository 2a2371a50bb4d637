"""The S3 calls on one object version (all pinned to that version): the one place that reads objects,
for the S3 flow, the API's `s3` source (through `handler.s3.api_access`) and the evaluation tools."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from handler.s3.events import ObjectRef
from handler.s3.faults import is_gone
from handler.s3.tags import from_tag_set, to_tag_set
from handler.settings import Settings

SNIFF_BYTES = 32  # enough for every magic number sniff_image_format knows (it needs 16)
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes


def version_args(ref: ObjectRef) -> dict[str, str]:
    return {"VersionId": ref.version_id} if ref.version_id else {}


def head(s3: Any, ref: ObjectRef) -> dict[str, Any] | None:
    """HeadObject (with checksums), or None when the object or that version no longer exists."""
    try:
        response: dict[str, Any] = s3.head_object(
            Bucket=ref.bucket, Key=ref.key, ChecksumMode="ENABLED", **version_args(ref)
        )
    except Exception as exc:
        if is_gone(exc):
            return None
        raise
    return response


def read_tags(s3: Any, ref: ObjectRef) -> dict[str, str]:
    response = s3.get_object_tagging(Bucket=ref.bucket, Key=ref.key, **version_args(ref))
    return from_tag_set(response.get("TagSet", []))


def write_tags(s3: Any, ref: ObjectRef, tags: Mapping[str, str]) -> None:
    s3.put_object_tagging(
        Bucket=ref.bucket, Key=ref.key, Tagging={"TagSet": to_tag_set(tags)}, **version_args(ref)
    )


def first_bytes(s3: Any, ref: ObjectRef, count: int = SNIFF_BYTES) -> bytes:
    """The object's first `count` bytes (a ranged GET: the rest is never transferred)."""
    response = s3.get_object(
        Bucket=ref.bucket, Key=ref.key, Range=f"bytes=0-{count - 1}", **version_args(ref)
    )
    return bytes(response["Body"].read(count))


def read_body(s3: Any, ref: ObjectRef) -> bytes:
    response = s3.get_object(Bucket=ref.bucket, Key=ref.key, **version_args(ref))
    return bytes(response["Body"].read())


CHUNK_BYTES = 1024 * 1024


def body_chunks(s3: Any, ref: ObjectRef) -> Iterator[bytes]:
    """The body in 1 MiB chunks, streamed (videos). GetObject runs now, so its errors raise here; the
    connection is closed however the reader stops."""
    body = s3.get_object(Bucket=ref.bucket, Key=ref.key, **version_args(ref))["Body"]

    def chunks() -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()

    return chunks()


def read_limited(s3: Any, ref: ObjectRef, limit: int) -> tuple[bytes, ObjectRef, str | None]:
    """The body, after HeadObject shows it is within `limit` (PayloadTooLarge past it, nothing downloaded),
    read from the very version that was sized; with that version and its ETag."""
    from handler.inputs.images import check_size

    response: dict[str, Any] = s3.head_object(Bucket=ref.bucket, Key=ref.key, **version_args(ref))
    check_size(int(response["ContentLength"]), limit)
    pinned = ref.pinned(response.get("VersionId"))
    return read_body(s3, pinned), pinned, response.get("ETag")


def size_of(s3: Any, ref: ObjectRef) -> int:
    """ContentLength from HeadObject (raises the ClientError when it cannot be read)."""
    return int(s3.head_object(Bucket=ref.bucket, Key=ref.key, **version_args(ref))["ContentLength"])


def quarantine_key(settings: Settings, ref: ObjectRef, version: str) -> str:
    """Where one source version's quarantine copy goes: its own key, so no copy ever replaces another.

    `<prefix><source bucket>/<key>/<version>` (version ids and ETag tokens hold no "/", so the mapping is
    one-to-one). A key too long for that becomes `<prefix><bucket>/_long/<sha256 of key>/<version>`; the
    original key is in the copy's metadata (when it fits) and in the decision record.
    """
    key = f"{settings.quarantine_prefix}{ref.bucket}/{ref.key}/{version}"
    if len(key.encode()) <= MAX_KEY_BYTES:
        return key
    digest = hashlib.sha256(ref.key.encode()).hexdigest()
    return f"{settings.quarantine_prefix}{ref.bucket}/_long/{digest}/{version}"


def in_quarantine_location(settings: Settings, ref: ObjectRef) -> bool:
    """True for objects that are themselves in quarantine (never judge or move those again)."""
    return ref.bucket == settings.quarantine_bucket and ref.key.startswith(settings.quarantine_prefix)


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if is_gone(exc):
            return False
        raise
    return True
