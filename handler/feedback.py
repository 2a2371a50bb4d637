"""Feedback: corrections of verdicts, stored as JSON lines (S3 or a local directory) and read back as data.

S3 objects cannot be appended to, so each record there is one object,
`<FEEDBACK_PREFIX>YYYY/MM/DD/<time>-<id>.jsonl`; locally, records are appended to one file per day,
`<FEEDBACK_DIR>/YYYY-MM-DD.jsonl`. Either way a reader takes every `*.jsonl` under the location.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from handler.settings import Settings

logger = logging.getLogger(__name__)


class FeedbackS3Object(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    version_id: str | None = None


class FeedbackImage(BaseModel):
    """Which image the correction is about: a reference, its content hash, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    s3: FeedbackS3Object | None = None
    url: str | None = Field(default=None, max_length=2048)

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        return url

    @model_validator(mode="after")
    def _something(self) -> FeedbackImage:
        if self.sha256 is None and self.s3 is None and self.url is None:
            raise ValueError("name the image: sha256, s3 or url")
        return self

    @property
    def identity(self) -> str:
        """One key per image: its hash when known, else its reference."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        if self.s3 is not None:
            return f"s3://{self.s3.bucket}/{self.s3.key}?versionId={self.s3.version_id or ''}"
        return str(self.url)


class FeedbackRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    received_at: datetime
    image: FeedbackImage
    correct_label: str = Field(min_length=1, max_length=200)
    verdict: str | None = None
    policy: str | None = None
    model: str | None = None
    note: str | None = None
    caller: dict[str, str] = Field(default_factory=dict)  # who sent it (API key id, source IP)


def new_record(image: FeedbackImage, correct_label: str, **fields: Any) -> FeedbackRecord:
    return FeedbackRecord(
        id=uuid.uuid4().hex,
        received_at=datetime.now(UTC),
        image=image,
        correct_label=correct_label,
        **fields,
    )


class FeedbackStore(Protocol):
    def put(self, record: FeedbackRecord) -> str:
        """Store one record; returns where it went."""
        ...


class LocalFeedbackStore:
    _lock = threading.Lock()

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, record: FeedbackRecord) -> str:
        path = self.directory / f"{record.received_at:%Y-%m-%d}.jsonl"
        line = record.model_dump_json(exclude_none=True) + "\n"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line)
        return str(path)


class S3FeedbackStore:
    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix, client

    def put(self, record: FeedbackRecord) -> str:
        key = f"{self.prefix}{record.received_at:%Y/%m/%d/%H%M%S}-{record.id}.jsonl"
        body = (record.model_dump_json(exclude_none=True) + "\n").encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/jsonl")
        return f"s3://{self.bucket}/{key}"


def feedback_store(settings: Settings, client: Any = None) -> FeedbackStore:
    """S3 when FEEDBACK_BUCKET is set, else FEEDBACK_DIR."""
    if settings.feedback_bucket:
        from handler.s3.client import get_s3_client

        return S3FeedbackStore(settings.feedback_bucket, settings.feedback_prefix, client or get_s3_client())
    return LocalFeedbackStore(settings.feedback_dir)


def _parse_lines(text: str, where: str) -> list[FeedbackRecord]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(FeedbackRecord.model_validate_json(line))
        except ValidationError as exc:
            logger.warning("skipping invalid feedback record %s:%d (%s)", where, number, exc.error_count())
    return records


def read_feedback(source: str, client: Any = None) -> list[FeedbackRecord]:
    """Every record under a local directory or `s3://bucket/prefix`, oldest first."""
    records: list[FeedbackRecord] = []
    if source.startswith("s3://"):
        from handler.s3.client import get_s3_client

        s3 = client or get_s3_client()
        bucket, _, prefix = source[len("s3://") :].partition("/")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith(".jsonl"):
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    records += _parse_lines(body.decode("utf-8"), f"s3://{bucket}/{item['Key']}")
    else:
        for path in sorted(Path(source).rglob("*.jsonl")):
            records += _parse_lines(path.read_text(encoding="utf-8"), str(path))
    return sorted(records, key=lambda r: r.received_at)


def latest_corrections(records: list[FeedbackRecord]) -> list[FeedbackRecord]:
    """One record per image: the latest correction wins."""
    latest: dict[str, FeedbackRecord] = {}
    for record in sorted(records, key=lambda r: r.received_at):
        latest[record.image.identity] = record
    return list(latest.values())
