"""Phase 2: each still in a forward pass of its own; videos and animations in order, on the clock.

An object's judgement depends on its own bytes alone. int8 activations are scaled per forward pass (and
fp32 kernels block a batch differently from one image), so a still sharing a pass with other uploaders'
objects would get scores that move with theirs: an uploader could shift a neighbour's verdict near a
threshold, and a redelivered event judged in another batch could disagree with the first judgement.
One pass per object also makes a failure (an exception, NaN scores) that object's alone.
"""

from __future__ import annotations

import time

from handler.exceptions import InputError
from handler.s3 import video as s3_video
from handler.s3.context import FlowContext
from handler.s3.work import Item, Outcome, StreamedVideo


def judge_stills(ctx: FlowContext, items: list[Item]) -> None:
    for item in items:
        try:
            _judge_alone(ctx, item)
        except InputError as exc:  # NaN or infinite scores: this object's `error` verdict
            ctx.errored(item, exc.detail)
        except Exception as exc:
            item.fail(exc)


def _judge_alone(ctx: FlowContext, item: Item) -> None:
    assert item.pixels is not None
    started = time.perf_counter()
    embeddings = ctx.mod.embed_pixels([item.pixels])
    [decision] = ctx.mod.judge_embeddings(embeddings, ctx.policy)
    item.model_ms = (time.perf_counter() - started) * 1000
    ctx.decided(item, decision)


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
