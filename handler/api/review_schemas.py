"""Request and response models of the review routes (/v1/review/...)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handler.decisions.record import DecisionRecord


class RecordView(BaseModel):
    """One decision on one object version, as the decision table holds it."""

    bucket: str
    key: str
    version: str = Field(description="The version id judged, or `etag-<ETag>` where S3 keeps no versions.")
    version_id: str | None
    judged_by: str = Field(description="The judged-by id (policy, model, heads, precision) of the verdict.")
    verdict: str = Field(description="The model's verdict: allow, review, quarantine or error.")
    top: str | None
    score: float | None
    scores: dict[str, float]
    flagged: list[str]
    head_scores: dict[str, float]
    policy: str = Field(description="The policy's id (name@fingerprint).")
    model_id: str
    judged_at: str
    source: str = Field(description="Who judged: s3 (the upload flow), api, review.")
    state: str = Field(description="`acting` while the action is being applied, then `done`.")
    reason: str | None = Field(description="Why an `error` verdict could not judge the object.")
    quarantine: str | None = Field(description="Where the quarantine copy went (s3://bucket/key).")
    review: dict[str, str] = Field(description="The reviewer's decision, identity and time; empty if none.")

    @classmethod
    def of(cls, record: DecisionRecord) -> RecordView:
        return cls(
            bucket=record.bucket,
            key=record.key,
            version=record.version,
            version_id=record.version_id,
            judged_by=record.judged_by,
            verdict=record.verdict,
            top=record.top,
            score=record.score,
            scores=dict(record.scores),
            flagged=list(record.flagged),
            head_scores=dict(record.head_scores),
            policy=record.policy,
            model_id=record.model_id,
            judged_at=record.judged_at,
            source=record.source,
            state=record.state,
            reason=record.reason,
            quarantine=str(record.quarantine) if record.quarantine is not None else None,
            review={k: str(v) for k, v in record.review.items()},
        )


class QueueItem(RecordView):
    thumbnail_url: str | None = Field(description="A short-lived presigned GET of the judged version.")


class QueueResponse(BaseModel):
    items: list[QueueItem] = Field(description="`review` verdicts awaiting a human, newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class HistoryResponse(BaseModel):
    bucket: str
    key: str
    decisions: list[RecordView] = Field(description="Every decision on every version, oldest first.")


class DecisionRequest(BaseModel):
    """A reviewer's decision on one record of the queue (the fields it was listed with)."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1, max_length=1024)
    version: str = Field(min_length=1, max_length=1100)
    judged_by: str = Field(min_length=1, max_length=200)
    decision: Literal["allow", "quarantine"]
    reviewer: str | None = Field(
        default=None, max_length=100, description="The reviewer's name, recorded with the decision."
    )
    correct_label: str | None = Field(
        default=None,
        max_length=200,
        description="The right category for the feedback record; default: the flagged category for "
        "quarantine, the policy's safe category for allow.",
    )

    @field_validator("reviewer", "correct_label")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = " ".join(value.split())
        if not cleaned.isprintable():
            raise ValueError("must be printable text")
        return cleaned or None


class DecisionResponse(BaseModel):
    decision: Literal["allow", "quarantine"]
    detail: str = Field(description="What was done: tagged, or moved to s3://...")
    quarantine: str | None = Field(description="Where the quarantine copy went.")
    feedback: str | None = Field(
        description="Where the feedback record went; null if it could not be stored."
    )
    record: RecordView
