"""The CSV manifest an S3 Batch Operations job reads (S3BatchOperations_CSV_20180820): one object a line.

Keys are URL-encoded, as Batch Operations requires (so no key's comma or newline can break a line). The
VersionId column is there only when every object has a version id: one manifest has one set of fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from handler.backfill.listing import Listed

FORMAT = "S3BatchOperations_CSV_20180820"


def fields(objects: Sequence[Listed]) -> list[str]:
    versioned = bool(objects) and all(o.version_id for o in objects)
    return ["Bucket", "Key", "VersionId"] if versioned else ["Bucket", "Key"]


def render(objects: Sequence[Listed]) -> bytes:
    with_versions = fields(objects)[-1] == "VersionId"
    lines = []
    for listed in objects:
        row = [listed.bucket, quote(listed.key, safe="/")]
        if with_versions:
            row.append(str(listed.version_id))
        lines.append(",".join(row))
    return ("\n".join(lines) + "\n").encode() if lines else b""
