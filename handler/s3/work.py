"""One object's state through the S3 flow's phases (inspect -> judge -> act), and its final result."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from handler.core.scoring import Decision
from handler.decisions.record import DecisionRecord
from handler.media.values import MultiFrame
from handler.s3.events import ObjectRef


class Outcome(StrEnum):
    judged = "judged"  # tagged with its verdict (allow, review; or quarantine with no QUARANTINE_BUCKET)
    quarantined = "quarantined"  # tagged, copied to quarantine, verified, source version deleted
    error = "error"  # tagged moderation-verdict=error with a moderation-reason
    already_judged = "already_judged"  # the decision table holds this version's verdict by this judged-by id
    in_quarantine = "in_quarantine"  # gone from the source and its quarantine copy is recorded: done earlier
    gone = "gone"  # deleted before its event arrived: nothing to do
    ignored = "ignored"  # lives in the quarantine location itself
    deferred = "deferred"  # a video with too little invocation time left: judged by a later delivery
    failed = "failed"  # an exception (see `error`): the caller retries


@dataclass(frozen=True)
class ObjectResult:
    ref: ObjectRef
    outcome: Outcome
    verdict: str | None = None
    detail: str | None = None
    error: Exception | None = None
    record: DecisionRecord | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class StreamedVideo:
    """A video object, streamed from S3 to a temporary file when its turn comes."""

    format: str
    size: int


Timed = StreamedVideo | MultiFrame  # judged in event order, on the invocation clock


@dataclass
class Item:
    """Exactly one of `pixels` / `sequence` / `record` / `result` says what the next phase does with it."""

    ref: ObjectRef
    started: float
    head: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    version: str = ""  # decisions.record.version_token of the version inspected
    pixels: Any = None  # a still, already preprocessed to the model's input size
    sequence: Timed | None = None
    record: DecisionRecord | None = None  # the verdict to act on
    claimed: bool = False  # `record` is already the table's (a resumed action)
    decision: Decision | None = None
    result: ObjectResult | None = None
    kind: str = "image"  # image | video | frames (for logs and metrics)
    model_ms: float | None = None  # its forward pass and scoring
    frames: int | None = None  # frames judged (videos and animations)

    def finish(self, outcome: Outcome, **fields: Any) -> None:
        self.result = ObjectResult(self.ref, outcome, **fields)
        self.pixels = self.sequence = None

    def fail(self, exc: Exception, outcome: Outcome = Outcome.failed) -> None:
        from handler.s3.faults import describe

        self.finish(outcome, detail=describe(exc), error=exc)
