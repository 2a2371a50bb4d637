"""Helpers for the S3 flow tests: a proxy around a real boto3 client, forced-verdict policies, buckets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

UPLOADS = "uploads"
QUARANTINE = "quarantine"
PREFIX = "q/"
TABLE = "decisions"


def quarantined_key(key: str, version: str, bucket: str = UPLOADS) -> str:
    """Where the flow puts one source version's quarantine copy (its own key per version)."""
    return f"{PREFIX}{bucket}/{key}/{version}"


def records_of(dynamodb: Any, key: str, bucket: str = UPLOADS) -> list[Any]:
    """Every decision record of one object, through the table's own reader."""
    from handler.decisions.table import DecisionTable

    return DecisionTable(TABLE, dynamodb).history(bucket, key)


FailWhen = Callable[[str, dict[str, Any]], bool]


class S3Proxy:
    """Passes every call to the real client (moto over HTTP), records it, and raises a ClientError
    (503 SlowDown by default) at the first `times` calls that `fail_when(method, kwargs)` picks."""

    def __init__(
        self,
        real: Any,
        fail_when: FailWhen | None = None,
        *,
        times: int = 1,
        code: str = "SlowDown",
        status: int = 503,
    ) -> None:
        self.real = real
        self.fail_when = fail_when
        self.remaining = times
        self.code = code
        self.status = status
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            if self.fail_when is not None and self.remaining > 0 and self.fail_when(name, kwargs):
                self.remaining -= 1
                operation = "".join(part.title() for part in name.split("_"))
                error = {"Code": self.code, "Message": f"injected {self.code} on {operation}"}
                raise ClientError(
                    {"Error": error, "ResponseMetadata": {"HTTPStatusCode": self.status}}, operation
                )
            return attribute(**kwargs)

        return call

    def called(self, method: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == method]


def fail_on(method: str, **match: Any) -> FailWhen:
    """Pick calls of `method` whose arguments include every `match` item."""
    return lambda name, kwargs: name == method and all(kwargs.get(k) == v for k, v in match.items())


def write_policy(tmp_path: Path, verdict: str) -> Path:
    """A policy that forces `verdict`: threshold 0.0 flags `bad` always; `allow` flags with action allow."""
    action = {"quarantine": "quarantine", "review": "review", "allow": "allow"}[verdict]
    policy = {
        "name": f"forced-{verdict}",
        "categories": [
            {"name": "bad", "prompts": ["a bad thing"], "threshold": 0.0, "action": action},
            {"name": "meh", "prompts": ["a dull thing"], "threshold": 1.0, "action": "allow"},
            {"name": "fine", "prompts": ["a fine thing"], "safe": True},
        ],
    }
    path = tmp_path / f"forced-{verdict}.json"
    path.write_text(json.dumps(policy))
    return path


def make_buckets(s3: Any, *, versioned: bool = True) -> None:
    for bucket in (UPLOADS, QUARANTINE):
        s3.create_bucket(Bucket=bucket)
        if versioned:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def tags_of(s3: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
    extra = {"VersionId": version_id} if version_id else {}
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **extra)["TagSet"]}


def exists(s3: Any, bucket: str, key: str, version_id: str | None = None) -> bool:
    extra = {"VersionId": version_id} if version_id else {}
    try:
        s3.head_object(Bucket=bucket, Key=key, **extra)
    except ClientError:
        return False
    return True
