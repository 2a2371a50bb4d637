"""Moving one object version to quarantine: copy, verify the copy, then delete the source. Never the reverse.

Each step is safe to repeat, so a crash or a fault between any two leaves the object in at least one
place and a retry finishes the move.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handler.s3.events import ObjectRef
from handler.s3.objects import version_args
from handler.s3.tags import to_header

logger = logging.getLogger(__name__)

_CHECKSUMS = ("ChecksumCRC64NVME", "ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256")
_ETAG_NOT_MD5 = ("aws:kms", "aws:kms:dsse")  # SSE-KMS ETags are not the MD5 of the data


class QuarantineVerifyError(RuntimeError):
    """The quarantine copy does not match its source; the source was kept. Retrying copies again."""

    transient = True


@dataclass(frozen=True)
class Destination:
    bucket: str
    key: str
    version_id: str | None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def move_to_quarantine(
    s3: Any, source: ObjectRef, source_head: Mapping[str, Any], tags: Mapping[str, str], bucket: str, key: str
) -> Destination:
    """Copy `source` (one exact version) to `bucket`/`key` with `tags`, verify it, delete the source."""
    destination = copy_version(s3, source, source_head, tags, bucket, key)
    dest_head = s3.head_object(
        Bucket=destination.bucket, Key=destination.key, ChecksumMode="ENABLED", **_version(destination)
    )
    verify_copy(source_head, dest_head, f"{source} -> {destination}")
    s3.delete_object(Bucket=source.bucket, Key=source.key, **version_args(source))
    return destination


def copy_version(
    s3: Any, source: ObjectRef, source_head: Mapping[str, Any], tags: Mapping[str, str], bucket: str, key: str
) -> Destination:
    """CopyObject keeps bytes, content type and metadata (COPY) and sets the merged tags (REPLACE).

    CopyObject handles objects up to 5 GB in one call, far above the moderation size limit.
    """
    copy_source = {"Bucket": source.bucket, "Key": source.key, **version_args(source)}
    extra: dict[str, Any] = {}
    if not source.version_id and source_head.get("ETag"):
        extra["CopySourceIfMatch"] = source_head["ETag"]  # unversioned: copy only what we judged
    response = s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource=copy_source,
        MetadataDirective="COPY",
        TaggingDirective="REPLACE",
        Tagging=to_header(tags),
        **extra,
    )
    return Destination(bucket, key, response.get("VersionId"))


def verify_copy(source: Mapping[str, Any], copy: Mapping[str, Any], what: str = "copy") -> None:
    """Same size always; same ETag for single-part, unencrypted-by-KMS sources; else same checksum if any.

    A multipart source's ETag ("...-N") is not the copy's, and composite checksums ("...-N") differ too:
    then the full-object checksums are compared when both sides have one, and otherwise the size alone.
    """
    if int(source.get("ContentLength", -1)) != int(copy.get("ContentLength", -2)):
        raise QuarantineVerifyError(
            f"{what}: size {copy.get('ContentLength')} != source size {source.get('ContentLength')}"
        )
    source_etag = str(source.get("ETag", ""))
    etag_is_md5 = (
        source_etag
        and "-" not in source_etag
        and source.get("ServerSideEncryption") not in _ETAG_NOT_MD5
        and not source.get("SSECustomerAlgorithm")
    )
    if etag_is_md5:
        if copy.get("ETag") != source_etag:
            raise QuarantineVerifyError(f"{what}: ETag {copy.get('ETag')} != source ETag {source_etag}")
        return
    for name in _CHECKSUMS:
        ours, theirs = source.get(name), copy.get(name)
        if ours and theirs and "-" not in str(ours) and "-" not in str(theirs):
            if ours != theirs:
                raise QuarantineVerifyError(f"{what}: {name} {theirs} != source {name} {ours}")
            return
    logger.debug("%s: verified by size only (multipart or KMS source, no comparable checksum)", what)


def _version(destination: Destination) -> dict[str, str]:
    return {"VersionId": destination.version_id} if destination.version_id else {}
