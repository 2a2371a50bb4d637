"""Phase 3, per object and concurrent: record the verdict, write the tags, quarantine when it says so.

Order: the decision table's conditional write (the first verdict on a version + judged-by id is the one
acted on) -> tags (before any move, a convenience copy) -> copy to this version's own quarantine key,
verify, delete the source version -> the record marked done with where the copy went.
"""

from __future__ import annotations

import logging

from handler.decisions.record import DecisionRecord, Quarantined
from handler.observability import verdict_events
from handler.s3 import objects as s3_object
from handler.s3.context import FlowContext
from handler.s3.quarantine import (
    SourceChanged,
    copy_to_quarantine,
    delete_source,
    provenance_metadata,
)
from handler.s3.tags import ERROR, merge_tags, record_tags
from handler.s3.work import Item, ObjectResult, Outcome

logger = logging.getLogger(__name__)


def act(ctx: FlowContext, item: Item) -> ObjectResult:
    record = item.record
    assert record is not None
    merged = merge_tags(item.tags, record_tags(record))
    if ctx.table is not None and not item.claimed:
        ours = record.with_changes(displaced_tags=merged.displaced) if merged.displaced else record
        record = ctx.table.claim(ours)  # the record keeps any user tag that yielded its place
        if record is not ours:  # another delivery decided first: act on its verdict
            merged = merge_tags(item.tags, record_tags(record))
    if merged.tags != item.tags:
        s3_object.write_tags(ctx.s3, item.ref, merged.tags)  # before any move, so a retry sees them too
    if record.verdict != "quarantine":
        _complete(ctx, record)
        outcome = Outcome.error if record.verdict == ERROR else Outcome.judged
        return ObjectResult(item.ref, outcome, verdict=record.verdict, detail=record.reason, record=record)

    settings = ctx.settings
    bucket = settings.quarantine_bucket
    if not bucket:
        logger.warning("%s: verdict quarantine but QUARANTINE_BUCKET is not set; tagged only", item.ref)
        _complete(ctx, record)
        return ObjectResult(
            item.ref,
            Outcome.judged,
            verdict=record.verdict,
            detail="QUARANTINE_BUCKET not set",
            record=record,
        )
    key = s3_object.quarantine_key(settings, item.ref, record.version)
    provenance = provenance_metadata(item.ref, record.verdict, record.policy, record.judged_at)
    destination = copy_to_quarantine(ctx.s3, item.ref, item.head, merged.tags, bucket, key, provenance)
    detail = f"moved to {destination}"
    try:
        delete_source(ctx.s3, item.ref, item.head)
    except SourceChanged as exc:
        detail = f"copied to {destination}; {exc}"
    record = _complete(ctx, record, Quarantined(destination.bucket, destination.key, destination.version_id))
    return ObjectResult(item.ref, Outcome.quarantined, verdict=record.verdict, detail=detail, record=record)


def _complete(
    ctx: FlowContext, record: DecisionRecord, quarantine: Quarantined | None = None
) -> DecisionRecord:
    """Announce a review/quarantine verdict, then mark the record done (a fault before: the retry
    resumes and announces again)."""
    final = record.with_changes(quarantine=quarantine or record.quarantine)
    if not record.done:
        verdict_events.publish(final, ctx.settings.event_bus_name)
    if ctx.table is None:
        return final
    return ctx.table.complete(record, quarantine)
