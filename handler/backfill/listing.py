"""The objects a backfill covers: the current versions under a prefix, from a listing or an S3 Inventory.

A listing costs one LIST request per 1,000 versions; an Inventory report (`--inventory`, its manifest.json)
is already paid for and is the way for buckets of many millions. Delete markers, noncurrent versions,
folder placeholders (keys ending in "/" with no bytes) and objects older than `since` are left out.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from handler.exceptions import InputError


@dataclass(frozen=True)
class Listed:
    bucket: str
    key: str
    version_id: str | None  # None: the bucket was never versioned, or the object predates versioning
    last_modified: datetime | None  # None: an inventory without the LastModifiedDate field


@dataclass
class Listing:
    objects: list[Listed]
    requests: int  # LIST (or inventory GET) requests it took


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix); the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise InputError(f"expected s3://bucket[/prefix], got {url!r}")
    return parts.netloc, parts.path.lstrip("/")


def parse_since(text: str | None) -> datetime | None:
    """A date (2026-01-31) or an ISO date-time; naive values are UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"--since wants a date such as 2026-01-31 or 2026-01-31T12:00:00Z, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _wanted(key: str, size: int | None, modified: datetime | None, since: datetime | None) -> bool:
    if key.endswith("/") and not size:
        return False  # a folder placeholder
    if since is None:
        return True
    if modified is None:
        raise InputError("--since needs the inventory's LastModifiedDate field, which this one lacks")
    return modified >= since


def from_bucket(s3: Any, bucket: str, prefix: str, since: datetime | None) -> Listing:
    """Current versions under prefix (ListObjectVersions, so each task names the exact version)."""
    found: list[Listed] = []
    requests = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        requests += 1
        for version in page.get("Versions", []):
            if not version["IsLatest"] or not _wanted(
                version["Key"], version["Size"], version["LastModified"], since
            ):
                continue
            version_id = version.get("VersionId")
            found.append(
                Listed(
                    bucket,
                    version["Key"],
                    None if version_id in (None, "null") else version_id,
                    version["LastModified"],
                )
            )
    return Listing(found, requests)


def _inventory_rows(s3: Any, manifest: dict[str, Any], bucket: str) -> Iterator[dict[str, str]]:
    columns = [c.strip() for c in manifest["fileSchema"].split(",")]
    for entry in manifest["files"]:
        body = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
        text = gzip.decompress(body).decode("utf-8") if entry["key"].endswith(".gz") else body.decode()
        for row in csv.reader(io.StringIO(text)):
            yield dict(zip(columns, row, strict=False))


def from_inventory(s3: Any, manifest_url: str, prefix: str, since: datetime | None) -> tuple[str, Listing]:
    """The source bucket and its current versions under prefix, read from an Inventory report's files."""
    bucket, key = parse_s3_url(manifest_url)
    if not key.endswith("manifest.json"):
        raise InputError(f"--inventory wants the report's manifest.json, got {manifest_url!r}")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    if manifest.get("fileFormat", "CSV").upper() != "CSV":
        raise InputError(f"the inventory is {manifest['fileFormat']}; only CSV inventories are read")
    requests = 1 + len(manifest["files"])
    source = manifest["sourceBucket"]
    found: list[Listed] = []
    for row in _inventory_rows(s3, manifest, bucket):
        object_key = unquote(row["Key"].replace("+", " "))  # inventory CSVs URL-encode keys
        if not object_key.startswith(prefix):
            continue
        if row.get("IsLatest", "true") != "true" or row.get("IsDeleteMarker", "false") == "true":
            continue
        modified = datetime.fromisoformat(row["LastModifiedDate"]) if row.get("LastModifiedDate") else None
        size = int(row["Size"]) if row.get("Size") else None
        if not _wanted(object_key, size, modified, since):
            continue
        found.append(Listed(row.get("Bucket", source), object_key, row.get("VersionId") or None, modified))
    return source, Listing(found, requests)
