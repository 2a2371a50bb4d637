"""The S3 moderation flow: inspect every object (S3 I/O, concurrent) -> judge (each still in a forward
pass of its own, so no upload moves another's scores; videos in order on the invocation clock) -> act
(record, tags, quarantine; concurrent).

Each object carries its own state and result through the three phases, so one object's fault (an
exception, an undecodable file, a poison image, a time budget) is that object's result alone.
Idempotency reads the decision table (DECISION_TABLE), never the object's tags; without a table every
delivery judges again (same model, same verdict) and nothing is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from handler.core.moderator import Moderator, get_moderator
from handler.decisions.table import DecisionTable, get_decision_table
from handler.logs import log_decision
from handler.media.judge import MediaLimits
from handler.observability import metrics
from handler.s3.acting import act
from handler.s3.client import get_s3_client
from handler.s3.context import FlowContext
from handler.s3.events import ObjectRef
from handler.s3.inspect import inspect
from handler.s3.judging import judge_sequences, judge_stills
from handler.s3.video import InvocationClock
from handler.s3.work import Item, ObjectResult, Outcome

logger = logging.getLogger(__name__)

__all__ = ["ObjectResult", "Outcome", "moderate_objects"]


def moderate_objects(
    refs: Sequence[ObjectRef],
    *,
    client: Any = None,
    moderator: Moderator | None = None,
    table: DecisionTable | None = None,
) -> list[ObjectResult]:
    """Judge and act on every object version in `refs`; one result per ref, in order (duplicates once)."""
    mod = moderator if moderator is not None else get_moderator()
    policy = mod.policies.default
    ctx = FlowContext(
        s3=client if client is not None else get_s3_client(),
        mod=mod,
        policy=policy,
        judged_by=mod.judged_by(policy),
        table=table if table is not None else get_decision_table(mod.settings),
        clock=InvocationClock(mod.settings),
        limits=MediaLimits.from_settings(mod.settings, mod.encoder.preprocess),
    )
    unique: dict[tuple[str, str, str | None], Item] = {}
    for ref in refs:  # the same version twice in one batch (a duplicate delivery): act once
        unique.setdefault(ref.identity, Item(ref, time.perf_counter()))
    items = list(unique.values())

    _each(ctx, items, lambda item: inspect(ctx, item))  # S3 round trips dominate: overlap them
    judge_stills(ctx, [item for item in items if item.result is None and item.pixels is not None])
    judge_sequences(ctx, [item for item in items if item.result is None and item.sequence is not None])

    def acted(item: Item) -> None:
        item.result = act(ctx, item)

    _each(ctx, [item for item in items if item.result is None and item.record is not None], acted)
    for item in items:
        _log(ctx, item)
    return [_result(unique[ref.identity]) for ref in refs]


def _each(ctx: FlowContext, items: list[Item], step: Callable[[Item], None]) -> None:
    """`step` on every item concurrently; an exception becomes that item's failed result."""

    def guarded(item: Item) -> None:
        try:
            step(item)
        except Exception as exc:
            item.fail(exc)

    with ThreadPoolExecutor(max_workers=ctx.settings.s3_io_workers) as pool:
        list(pool.map(guarded, items))


def _result(item: Item) -> ObjectResult:
    assert item.result is not None, f"{item.ref} left the flow without a result"
    return item.result


def _log(ctx: FlowContext, item: Item) -> None:
    result = _result(item)
    record = result.record
    ms = (time.perf_counter() - item.started) * 1000
    log_decision(
        logger,
        event="s3_moderation",
        object=str(result.ref),
        kind=item.kind,
        bucket=result.ref.bucket,
        key=result.ref.key,
        version=result.ref.version_id,
        outcome=result.outcome.value,
        verdict=result.verdict,
        top=record.top if record else None,
        score=record.score if record else None,
        scores=dict(record.scores) if record and record.scores else None,
        policy=record.policy if record else None,
        judged_by=record.judged_by if record else None,
        quarantine=str(record.quarantine) if record and record.quarantine else None,
        detail=result.detail,
        frames=item.frames,
        ms=ms,
    )
    if result.outcome in (Outcome.judged, Outcome.quarantined, Outcome.error):
        assert record is not None
        metrics.object_judged(
            ctx.settings,
            source="s3",
            verdict=record.verdict,
            flagged=record.flagged,
            ms=ms,
            model_ms=item.model_ms,
            reason=metrics.error_reason(record.reason) if record.reason else None,
        )
    elif result.outcome in (Outcome.failed, Outcome.deferred):
        metrics.failure(ctx.settings, result.outcome.value)
    if item.frames is not None:
        metrics.video_frames(ctx.settings, item.frames)
