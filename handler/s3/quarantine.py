"""Moving one object version to quarantine: copy, verify the copy, then delete the source. Never the reverse.

Each step is safe to repeat, so a crash or a fault between any two leaves the object in at least one
place and a retry finishes the move. The copy carries its provenance in its metadata
(`moderation-source-*`, verdict, policy, time) beside the source's own. Where S3 keeps no versions, the
delete is conditional on the ETag that was judged (If-Match): an overwrite after the judgement is never
deleted unjudged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from handler.s3.events import ObjectRef
from handler.s3.objects import version_args
from handler.s3.tags import to_header

logger = logging.getLogger(__name__)

_CHECKSUMS = ("ChecksumCRC64NVME", "ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256")
_ETAG_NOT_MD5 = ("aws:kms", "aws:kms:dsse")  # SSE-KMS ETags are not the MD5 of the data
_CONTENT_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")
MAX_METADATA_BYTES = 2048  # S3's limit on user-defined metadata (keys and values)


class SourceChanged(RuntimeError):
    """An unversioned source was overwritten after it was judged: the new object is not deleted (its own
    event judges it); the judged bytes are safe in quarantine."""


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


def copy_to_quarantine(
    s3: Any,
    source: ObjectRef,
    source_head: Mapping[str, Any],
    tags: Mapping[str, str],
    bucket: str,
    key: str,
    provenance: Mapping[str, str],
) -> Destination:
    """Copy `source` (one exact version) to `bucket`/`key` with `tags` and verify the copy. The caller
    deletes the source (`delete_source`) only after this returns."""
    destination = copy_version(s3, source, source_head, tags, bucket, key, provenance)
    dest_head = s3.head_object(
        Bucket=destination.bucket, Key=destination.key, ChecksumMode="ENABLED", **_version(destination)
    )
    verify_copy(source_head, dest_head, f"{source} -> {destination}")
    return destination


def delete_source(s3: Any, source: ObjectRef, source_head: Mapping[str, Any]) -> None:
    """Delete the judged version; unversioned, only while it still has the ETag that was judged."""
    from botocore.exceptions import ClientError

    from handler.s3.faults import error_code

    condition = {}
    if unversioned(source) and source_head.get("ETag"):
        condition["IfMatch"] = str(source_head["ETag"])
    try:
        s3.delete_object(Bucket=source.bucket, Key=source.key, **version_args(source), **condition)
    except ClientError as exc:
        if error_code(exc) == "PreconditionFailed":
            raise SourceChanged(
                f"{source} was overwritten after it was judged; the new object is kept"
            ) from exc
        raise


def unversioned(source: ObjectRef) -> bool:
    return source.version_id in (None, "null")


def copy_version(
    s3: Any,
    source: ObjectRef,
    source_head: Mapping[str, Any],
    tags: Mapping[str, str],
    bucket: str,
    key: str,
    provenance: Mapping[str, str],
) -> Destination:
    """CopyObject keeps the bytes, content headers and metadata, adds the provenance, sets the tags.

    CopyObject handles objects up to 5 GB in one call, far above the moderation size limit.
    """
    copy_source = {"Bucket": source.bucket, "Key": source.key, **version_args(source)}
    extra: dict[str, Any] = {}
    if unversioned(source) and source_head.get("ETag"):
        extra["CopySourceIfMatch"] = source_head["ETag"]  # unversioned: copy only what we judged
    metadata = copy_metadata(source_head.get("Metadata") or {}, provenance)
    if metadata is None:  # the source's own metadata leaves no room: keep it as it is
        logger.warning("%s: no room for provenance metadata; it is in the decision record only", source)
        extra["MetadataDirective"] = "COPY"
    else:
        extra["MetadataDirective"] = "REPLACE"
        extra["Metadata"] = metadata
        extra.update({name: source_head[name] for name in _CONTENT_HEADERS if source_head.get(name)})
        if isinstance(source_head.get("Expires"), datetime):
            extra["Expires"] = source_head["Expires"]
    response = s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource=copy_source,
        TaggingDirective="REPLACE",
        Tagging=to_header(tags),
        **extra,
    )
    return Destination(bucket, key, response.get("VersionId"))


def provenance_metadata(source: ObjectRef, verdict: str, policy: str, judged_at: str) -> dict[str, str]:
    """Where a quarantine copy came from (values URL-quoted: metadata travels as ASCII headers)."""
    return {
        "moderation-source-bucket": source.bucket,
        "moderation-source-key": quote(source.key, safe="/"),
        "moderation-source-version": source.version_id or "",
        "moderation-verdict": verdict,
        "moderation-policy": quote(policy, safe="@"),
        "moderation-judged-at": judged_at,
    }


def copy_metadata(own: Mapping[str, str], provenance: Mapping[str, str]) -> dict[str, str] | None:
    """The source's metadata plus the provenance, within S3's 2 KB; a long key goes in as its sha256."""
    merged = {**own, **provenance}
    if _size(merged) > MAX_METADATA_BYTES and "moderation-source-key" in provenance:
        digest = hashlib.sha256(unquote(provenance["moderation-source-key"]).encode()).hexdigest()
        merged.pop("moderation-source-key")
        merged["moderation-source-key-sha256"] = digest
    return merged if _size(merged) <= MAX_METADATA_BYTES else None


def _size(metadata: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())


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
