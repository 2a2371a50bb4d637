"""The S3 calls the moderation flow makes on one object version (all pinned to that version)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handler.s3.events import ObjectRef
from handler.s3.faults import is_gone
from handler.s3.tags import from_tag_set, to_tag_set
from handler.settings import Settings

SNIFF_BYTES = 32  # enough for every magic number sniff_image_format knows (it needs 16)


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


def quarantine_key(settings: Settings, key: str) -> str:
    return f"{settings.quarantine_prefix}{key}"


def in_quarantine_location(settings: Settings, ref: ObjectRef) -> bool:
    """True for objects that are themselves in quarantine (never judge or move those again)."""
    return ref.bucket == settings.quarantine_bucket and ref.key.startswith(settings.quarantine_prefix)


def quarantined_copy_exists(s3: Any, settings: Settings, key: str) -> bool:
    if not settings.quarantine_bucket:
        return False
    try:
        s3.head_object(Bucket=settings.quarantine_bucket, Key=quarantine_key(settings, key))
    except Exception as exc:
        if is_gone(exc):
            return False
        raise
    return True
