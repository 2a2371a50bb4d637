"""One decision on one object version, as stored in the decision table (DynamoDB attribute values)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handler.core.provenance import JudgedBy
    from handler.core.scoring import Decision

PENDING = "acting"  # claimed: the verdict is final, its tags / quarantine move may not have finished
DONE = "done"  # tags written and, for quarantine, the copy verified and the source version deleted
REVIEW_QUEUE = "review"  # value of the sparse `queue` attribute while a `review` verdict awaits a human


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version_token(version_id: str | None, etag: str | None) -> str:
    """What identifies the exact bytes judged: the version id, or the ETag where S3 keeps no versions.

    The pre-versioning "null" version can be overwritten in place (suspended versioning), so it counts
    as unversioned.
    """
    if version_id and version_id != "null":
        return version_id
    bare = (etag or "").strip('"') or "unknown"
    return f"etag-{bare}"


@dataclass(frozen=True)
class Quarantined:
    bucket: str
    key: str
    version_id: str | None = None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class DecisionRecord:
    """A verdict on `bucket/key` at `version` (see `version_token`) by `judged_by`."""

    bucket: str
    key: str
    version: str
    judged_by: str
    verdict: str
    version_id: str | None = None
    etag: str | None = None
    top: str | None = None
    score: float | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    head_scores: Mapping[str, float] = field(default_factory=dict)
    flagged: tuple[str, ...] = ()
    policy: str = ""
    model_id: str = ""
    model_fingerprint: str = ""
    precision: str = ""
    head_fingerprints: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None  # error verdicts: why the object could not be judged
    extra_tags: Mapping[str, str] = field(default_factory=dict)  # e.g. videos' first flagged second
    displaced_tags: Mapping[str, str] = field(default_factory=dict)  # user tags that made room for ours
    quarantine: Quarantined | None = None
    source: str = "s3"  # s3 (the flow's own record) | api (a caller's /v1/moderate of an s3 source)
    caller: Mapping[str, str] = field(default_factory=dict)
    state: str = PENDING
    judged_at: str = field(default_factory=now_iso)
    review: Mapping[str, str] = field(default_factory=dict)  # a reviewer's decision, identity, time

    @property
    def pk(self) -> str:
        return object_pk(self.bucket, self.key)

    @property
    def sk(self) -> str:
        """The S3 flow's key is one per version + judged-by id (idempotency reads it); a decision made for
        an API caller is history only, one item per call, and never stands in for the S3 flow's."""
        base = f"{self.version}#{self.judged_by}"
        return base if self.source == "s3" else f"{base}#{self.source}@{self.judged_at}"

    @property
    def done(self) -> bool:
        return self.state == DONE

    def with_changes(self, **changes: Any) -> DecisionRecord:
        return replace(self, **changes)

    def to_item(self) -> dict[str, Any]:
        """Plain Python values for boto3's TypeSerializer (floats as Decimal; empty values left out)."""
        item: dict[str, Any] = {"pk": self.pk, "sk": self.sk}
        for name, value in asdict(self).items():
            if value is None or value == {} or value == () or value == "":
                continue
            item[name] = _to_dynamo(value)
        if self.verdict == REVIEW_QUEUE and self.done and not self.review and self.source == "s3":
            item["queue"] = REVIEW_QUEUE  # the sparse review-queue index holds exactly these
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DecisionRecord:
        known = set(cls.__dataclass_fields__)
        values = {k: _from_dynamo(v) for k, v in item.items() if k in known}
        if isinstance(values.get("quarantine"), dict):
            values["quarantine"] = Quarantined(**values["quarantine"])
        if "flagged" in values:
            values["flagged"] = tuple(values["flagged"])
        return cls(**values)


def object_pk(bucket: str, key: str) -> str:
    """Bucket names hold no "/", so the first one separates them."""
    return f"{bucket}/{key}"


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r} cannot be recorded")
        return Decimal(repr(round(value, 6)))
    if isinstance(value, Mapping):
        return {str(k): _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def new_record(
    bucket: str,
    key: str,
    version_id: str | None,
    etag: str | None,
    by: JudgedBy,
    *,
    decision: Decision | None = None,
    verdict: str | None = None,
    **fields: Any,
) -> DecisionRecord:
    """A record of `decision` (or of a bare `verdict`, e.g. `error`) on one object version, by `by`."""
    if decision is not None:
        fields = {
            "top": decision.top,
            "score": decision.top_score,
            "scores": decision.scores,
            "head_scores": decision.head_scores,
            "flagged": tuple(decision.flagged),
            **fields,
        }
        verdict = decision.verdict.value
    assert verdict is not None, "a record needs a decision or a verdict"
    return DecisionRecord(
        bucket=bucket,
        key=key,
        version=version_token(version_id, etag),
        version_id=version_id,
        etag=etag,
        judged_by=by.id,
        verdict=verdict,
        policy=by.policy,
        model_id=by.model_id,
        model_fingerprint=by.model_fingerprint,
        precision=by.precision,
        head_fingerprints=by.head_fingerprints,
        **fields,
    )
