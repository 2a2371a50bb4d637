"""Phase 2: stills in one forward pass per MAX_BATCH_IMAGES; videos and animations in order, on the clock.

A failure of a batch is isolated by judging its images one at a time: an object that still fails alone
fails alone (NaN scores are that object's `error` verdict; anything else is retried), and its neighbours
keep their verdicts.
"""

from __future__ import annotations

import logging
import time

from handler.exceptions import InputError
from handler.s3 import video as s3_video
from handler.s3.context import FlowContext
from handler.s3.work import Item, Outcome, StreamedVideo

logger = logging.getLogger(__name__)


def judge_stills(ctx: FlowContext, items: list[Item]) -> None:
    step = ctx.settings.max_batch_images
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        try:
            _judge_together(ctx, chunk)
        except Exception as exc:
            logger.warning("a batch of %d images failed (%s); judging them one by one", len(chunk), exc)
            for item in chunk:
                try:
                    _judge_together(ctx, [item])
                except InputError as alone:
                    ctx.errored(item, alone.detail)
                except Exception as alone:
                    item.fail(alone)


def _judge_together(ctx: FlowContext, items: list[Item]) -> None:
    started = time.perf_counter()
    embeddings = ctx.mod.embed_pixels([item.pixels for item in items])
    share = (time.perf_counter() - started) * 1000 / len(items)
    for item, decision in zip(items, ctx.mod.judge_embeddings(embeddings, ctx.policy), strict=True):
        ctx.decided(item, decision)
        item.model_ms = share


def judge_sequences(ctx: FlowContext, items: list[Item]) -> None:
    """In event order, so the invocation clock that decides whether another one fits sees them in turn."""
    for item in items:
        timed = item.sequence
        assert timed is not None
        try:
            if isinstance(timed, StreamedVideo):
                verdict = s3_video.judge_video_object(
                    ctx.s3, ctx.mod, ctx.policy, ctx.limits, item.ref, timed.size, timed.format, ctx.clock
                )
            else:
                verdict = s3_video.judge_frames_object(timed, ctx.mod, ctx.policy, ctx.limits, ctx.clock)
        except s3_video.VideoDeferred as exc:
            item.fail(exc, Outcome.deferred)
        except InputError as exc:
            kind = "video" if isinstance(timed, StreamedVideo) else "multi-frame image"
            ctx.errored(item, f"{timed.format} {kind}: {exc.detail}")
        except Exception as exc:
            item.fail(exc)
        else:
            ctx.decided(item, verdict.decision, s3_video.video_tags(verdict))
            item.frames = verdict.frames
