"""Apply a reviewer's allow / quarantine to one judged object version, exactly as the S3 flow acts.

Order: the record must still await review and the judged bytes must still be there (same version, same
ETag) -> the decision table's conditional write takes the record out of the queue (the first reviewer
wins; the record says `acting` until the action is done) -> tags (the S3 flow's `record_tags` with the
reviewer's verdict) -> for quarantine, the S3 flow's verified move (copy to this version's own
quarantine key, verify, delete the source version) -> the record marked done with where the copy went ->
a feedback record, so `evaluate --feedback` and `train-head --feedback` learn from the decision.
A reviewer whose own earlier attempt stopped half-way (the record says `acting` with their decision)
may send it again: every step is safe to repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from handler.core.policy import PolicySet
from handler.decisions.record import PENDING, REVIEW_QUEUE, DecisionRecord, Quarantined, now_iso
from handler.decisions.table import DecisionConflict, DecisionTable
from handler.exceptions import InputError
from handler.feedback import FeedbackImage, FeedbackS3Object, feedback_store, new_record
from handler.s3 import objects as s3_object
from handler.s3.events import ObjectRef
from handler.s3.quarantine import SourceChanged, copy_to_quarantine, delete_source, provenance_metadata
from handler.s3.tags import merge_tags, record_tags
from handler.settings import Settings

logger = logging.getLogger(__name__)

ReviewDecision = Literal["allow", "quarantine"]


class ReviewConflict(InputError):
    """The record is no longer this reviewer's to decide (someone decided first, or the object changed)."""

    status_code = 409


@dataclass(frozen=True)
class ReviewTarget:
    bucket: str
    key: str
    version: str
    judged_by: str


@dataclass(frozen=True)
class ReviewResult:
    record: DecisionRecord
    detail: str
    feedback: str | None  # where the feedback record went; None when it could not be stored


def decide(
    table: DecisionTable,
    s3: Any,
    settings: Settings,
    policies: PolicySet,
    target: ReviewTarget,
    decision: ReviewDecision,
    reviewer: Mapping[str, str],
    correct_label: str | None = None,
) -> ReviewResult:
    record = table.get(target.bucket, target.key, target.version, target.judged_by)
    if record is None:
        raise InputError(f"no decision on s3://{target.bucket}/{target.key} at {target.version}", 404)
    if decision == "quarantine" and not settings.quarantine_bucket:
        raise InputError("QUARANTINE_BUCKET is not set: this deployment cannot quarantine", 503)
    resuming = _resumable(record, decision, reviewer)
    if not resuming:
        _awaits_review(record)
    ref = ObjectRef(record.bucket, record.key, record.version_id)
    if resuming and decision == "quarantine":
        moved = _already_moved(s3, settings, ref, record)
        if moved is not None:  # the attempt stopped after the delete: only the record is left to finish
            record = table.complete(record, moved)
            label = correct_label or _label_for(record, decision, policies)
            return ReviewResult(record, f"moved to {moved}", _feedback(settings, record, decision, label))
    head = _unchanged_head(s3, ref, record)
    if not resuming:
        try:
            record = table.decide_review(record.with_changes(state=PENDING), decision, dict(reviewer), None)
        except DecisionConflict as exc:
            raise ReviewConflict(_decided_by(exc.current) or str(exc)) from exc
    record, detail = _act(table, s3, settings, ref, head, record, decision)
    label = correct_label or _label_for(record, decision, policies)
    return ReviewResult(record, detail, _feedback(settings, record, decision, label))


def _resumable(record: DecisionRecord, decision: str, reviewer: Mapping[str, str]) -> bool:
    """The record was claimed by this very reviewer (name and API key) for this decision, and not done."""
    review = record.review
    same = all(review.get(field) == reviewer.get(field) for field in ("reviewer", "api_key_id"))
    return record.state == PENDING and review.get("decision") == decision and same


def _awaits_review(record: DecisionRecord) -> None:
    if record.review:
        raise ReviewConflict(_decided_by(record) or "already decided")
    if record.verdict != REVIEW_QUEUE or not record.done:
        raise ReviewConflict(
            f"s3://{record.bucket}/{record.key} is not awaiting review (verdict {record.verdict}, "
            f"state {record.state})"
        )


def _decided_by(record: DecisionRecord | None) -> str | None:
    if record is None or not record.review:
        return None
    review = record.review
    who = review.get("reviewer") or review.get("api_key_id") or "another reviewer"
    return (
        f"s3://{record.bucket}/{record.key} was already decided: {review.get('decision')} by {who} "
        f"at {review.get('at')}"
    )


def _already_moved(s3: Any, settings: Settings, ref: ObjectRef, record: DecisionRecord) -> Quarantined | None:
    """The verified copy, when the source version is gone: a move that completed but for the record."""
    if s3_object.head(s3, ref) is not None:
        return None
    bucket = str(settings.quarantine_bucket)
    key = s3_object.quarantine_key(settings, ref, record.version)
    copy = s3_object.head(s3, ObjectRef(bucket, key))
    if copy is None:
        return None
    return Quarantined(bucket, key, copy.get("VersionId"))


def _unchanged_head(s3: Any, ref: ObjectRef, record: DecisionRecord) -> dict[str, Any]:
    """The judged version as it is now; 409 when it is gone or its bytes are not the ones judged."""
    head = s3_object.head(s3, ref)
    if head is None:
        raise ReviewConflict(f"{ref} no longer exists (deleted or moved since it was judged)")
    if record.etag and head.get("ETag") != record.etag:
        raise ReviewConflict(
            f"{ref} changed since it was judged (ETag {head.get('ETag')}, judged {record.etag}); "
            "the new content is judged on its own"
        )
    return head


def _act(
    table: DecisionTable,
    s3: Any,
    settings: Settings,
    ref: ObjectRef,
    head: dict[str, Any],
    record: DecisionRecord,
    decision: ReviewDecision,
) -> tuple[DecisionRecord, str]:
    merged = merge_tags(s3_object.read_tags(s3, ref), record_tags(record.with_changes(verdict=decision)))
    s3_object.write_tags(s3, ref, merged.tags)  # before any move, as the S3 flow does
    if decision == "allow":
        return table.complete(record), "tagged allow"
    bucket = str(settings.quarantine_bucket)
    key = s3_object.quarantine_key(settings, ref, record.version)
    provenance = provenance_metadata(ref, decision, record.policy, record.review.get("at") or now_iso())
    destination = copy_to_quarantine(s3, ref, head, merged.tags, bucket, key, provenance)
    detail = f"moved to {destination}"
    try:
        delete_source(s3, ref, head)
    except SourceChanged as exc:
        detail = f"copied to {destination}; {exc}"
    where = Quarantined(destination.bucket, destination.key, destination.version_id)
    return table.complete(record, where), detail


def _label_for(record: DecisionRecord, decision: ReviewDecision, policies: PolicySet) -> str:
    """The feedback label: for quarantine the flagged category that sent it to review, for allow the
    policy's (first) safe category."""
    policy = policies.get(record.policy.split("@")[0])
    if decision == "quarantine":
        if record.top and record.top in record.flagged:
            return record.top
        return record.flagged[0] if record.flagged else str(record.top or "flagged")
    safe = [c.name for c in policy.categories if c.safe] if policy is not None else []
    return safe[0] if safe else "safe"


def _feedback(settings: Settings, record: DecisionRecord, decision: str, label: str) -> str | None:
    """One correction record naming where the judged bytes now are (the quarantine copy once moved)."""
    where = record.quarantine
    s3 = (
        FeedbackS3Object(bucket=where.bucket, key=where.key, version_id=where.version_id)
        if where is not None
        else FeedbackS3Object(bucket=record.bucket, key=record.key, version_id=record.version_id)
    )
    image = FeedbackImage(s3=s3)
    who = record.review.get("reviewer") or record.review.get("api_key_id") or "a reviewer"
    caller = {k: v for k, v in record.review.items() if k not in ("decision", "at")}
    feedback = new_record(
        image,
        label,
        verdict=record.verdict,
        policy=record.policy,
        model=record.model_id,
        note=f"review: {decision} by {who}",
        caller=caller,
    )
    try:
        return feedback_store(settings).put(feedback)
    except Exception:  # the decision is applied and recorded; a lost feedback line must not hide that
        logger.exception("review feedback could not be stored for s3://%s/%s", record.bucket, record.key)
        return None
