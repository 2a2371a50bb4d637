"""The S3 moderation flow: judge object versions in one batched forward pass, then tag or quarantine each.

Per object: HeadObject (gone? already judged by this policy? too large?) -> a ranged GET of the first
bytes (is it an image at all?) -> the body -> decode. Every decodable image of the batch then goes
through the model at once; afterwards each object is tagged, and quarantined if the verdict says so.
A video (or an animated GIF/WebP) is judged frame by frame as it is inspected (`handler.s3.video`), and
then tagged and moved by the same code.
A permanent problem with one object is a `moderation-verdict=error` tag; an infrastructure fault is
recorded on that object's result (`error`) for the caller to raise or report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from PIL import Image

from handler.core.moderator import Moderator, get_moderator
from handler.core.policy import Action, Policy
from handler.core.scoring import Decision
from handler.exceptions import InputError
from handler.inputs.images import sniff_image_format
from handler.logs import log_decision
from handler.s3 import objects as s3_object
from handler.s3 import video as s3_video
from handler.s3.client import get_s3_client
from handler.s3.events import ObjectRef
from handler.s3.faults import describe
from handler.s3.quarantine import move_to_quarantine
from handler.s3.tags import ERROR, decision_tags, error_tags, judged_verdict, merge_tags
from handler.video.formats import VIDEO_SNIFF_BYTES, sniff_video_format
from handler.video.verdict import VideoVerdict

logger = logging.getLogger(__name__)


class _VideoTurns:
    """Objects are inspected in parallel, but videos (judged during inspection) take turns in event order,
    so the invocation clock that decides whether another video still fits sees them in sequence."""

    def __init__(self, count: int) -> None:
        self._done = [threading.Event() for _ in range(count)]

    @contextmanager
    def turn(self, index: int) -> Iterator[None]:
        for earlier in self._done[:index]:
            earlier.wait()
        yield

    def done(self, index: int) -> None:
        self._done[index].set()


class Outcome(StrEnum):
    judged = "judged"  # tagged with its verdict (allow, review; or quarantine with no QUARANTINE_BUCKET)
    quarantined = "quarantined"  # tagged, copied to quarantine, verified, source version deleted
    error = "error"  # tagged moderation-verdict=error with a moderation-reason
    already_judged = "already_judged"  # its tags show a verdict by the current policy: nothing to do
    in_quarantine = "in_quarantine"  # gone from the source and present in quarantine: done earlier
    gone = "gone"  # deleted before its event arrived: nothing to do
    ignored = "ignored"  # lives in the quarantine location itself
    failed = "failed"  # an exception (see `error`): the caller retries


@dataclass(frozen=True)
class ObjectResult:
    ref: ObjectRef
    outcome: Outcome
    verdict: str | None = None
    detail: str | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Pending:
    """An object waiting for the model (`image`) or, if already tagged quarantine, for the move only."""

    ref: ObjectRef
    head: dict[str, Any]
    tags: dict[str, str]
    started: float
    image: Image.Image | None = None
    decision: Decision | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)  # after the decision's (videos: first flagged)


def moderate_objects(
    refs: Sequence[ObjectRef], *, client: Any = None, moderator: Moderator | None = None
) -> list[ObjectResult]:
    """Judge and act on every object version in `refs`; one result per ref, in order (duplicates once)."""
    s3 = client if client is not None else get_s3_client()
    mod = moderator if moderator is not None else get_moderator()
    policy = mod.policies.default
    results: dict[tuple[str, str, str | None], ObjectResult] = {}
    pending: dict[tuple[str, str, str | None], _Pending] = {}
    clock = s3_video.InvocationClock(mod.settings)
    first_of: dict[tuple[str, str, str | None], ObjectRef] = {}
    for ref in refs:  # the same version twice in one batch (a duplicate delivery): act once
        first_of.setdefault(ref.identity, ref)
    unique = list(first_of.values())

    turns = _VideoTurns(len(unique))

    def inspect(index: int) -> tuple[ObjectResult | _Pending, float]:
        ref, started = unique[index], time.perf_counter()
        try:
            return _inspect(s3, mod, policy, ref, started, clock, lambda: turns.turn(index)), started
        except Exception as exc:
            return ObjectResult(ref, Outcome.failed, detail=describe(exc), error=exc), started
        finally:
            turns.done(index)

    # S3 round trips dominate on real S3 (5 calls an object): overlap them; the model still runs once.
    with ThreadPoolExecutor(max_workers=mod.settings.s3_io_workers) as pool:
        for ref, (step, started) in zip(unique, pool.map(inspect, range(len(unique))), strict=True):
            if isinstance(step, _Pending):
                pending[ref.identity] = step
            else:
                results[ref.identity] = _logged(step, started)

    try:
        _judge_all(mod, policy, [p for p in pending.values() if p.image is not None])
    except Exception as exc:  # the model failed: every waiting object fails with it
        for identity, item in list(pending.items()):
            if item.image is not None:
                del pending[identity]
                results[identity] = _logged(
                    ObjectResult(item.ref, Outcome.failed, detail=describe(exc), error=exc), item.started
                )

    def act(item: _Pending) -> ObjectResult:
        try:
            return _act(s3, mod, item)
        except Exception as exc:
            return ObjectResult(item.ref, Outcome.failed, detail=describe(exc), error=exc)

    with ThreadPoolExecutor(max_workers=mod.settings.s3_io_workers) as pool:
        for (identity, item), result in zip(pending.items(), pool.map(act, pending.values()), strict=True):
            results[identity] = _logged(result, item.started, item.decision)
    return [results[ref.identity] for ref in refs]


def _inspect(
    s3: Any,
    mod: Moderator,
    policy: Policy,
    ref: ObjectRef,
    started: float,
    clock: s3_video.InvocationClock,
    video_turn: Callable[[], AbstractContextManager[None]],
) -> ObjectResult | _Pending:
    settings = mod.settings
    if s3_object.in_quarantine_location(settings, ref):
        return ObjectResult(ref, Outcome.ignored, detail="object is in the quarantine location")
    head = s3_object.head(s3, ref)
    if head is None:
        if s3_object.quarantined_copy_exists(s3, settings, ref.key):
            return ObjectResult(ref, Outcome.in_quarantine, detail="already quarantined")
        return ObjectResult(ref, Outcome.gone, detail="object no longer exists")
    ref = ref.pinned(head.get("VersionId"))  # everything below acts on the version we just saw
    tags = s3_object.read_tags(s3, ref)
    earlier = judged_verdict(tags, policy.policy_id)
    if earlier == Action.quarantine.value:  # a move that did not finish: resume it, no second judgement
        return _Pending(ref, head, tags, started)
    if earlier is not None:
        return ObjectResult(ref, Outcome.already_judged, verdict=earlier, detail="judged by this policy")

    size = int(head.get("ContentLength", 0))
    limit = settings.object_size_limit
    if size > max(limit, s3_video.video_size_limit(settings)):  # too large for an image and for a video
        return _tag_error(s3, ref, tags, policy, f"object is {size} bytes, over the limit of {limit} bytes")
    if size == 0:
        return _tag_error(s3, ref, tags, policy, "object is empty")
    first = s3_object.first_bytes(s3, ref, VIDEO_SNIFF_BYTES)
    video_format = sniff_video_format(first)
    if video_format is not None:
        try:
            with video_turn():
                verdict = s3_video.judge_video_object(s3, mod, policy, ref, size, video_format, clock)
        except InputError as exc:
            return _tag_error(s3, ref, tags, policy, f"{video_format} video: {exc.detail}")
        return _judged_video(ref, head, tags, started, verdict)
    if size > limit:
        return _tag_error(s3, ref, tags, policy, f"object is {size} bytes, over the limit of {limit} bytes")
    image_format = sniff_image_format(first)
    if image_format is None:
        return _tag_error(s3, ref, tags, policy, "not an image or a video: no known image or video signature")
    try:
        data = s3_object.read_body(s3, ref)
        if s3_video.is_animated(image_format, data):  # every frame is judged, as for a video
            with video_turn():
                verdict = s3_video.judge_animated(data, image_format, mod, policy, clock)
            return _judged_video(ref, head, tags, started, verdict)
        image = mod.decode(data)
    except InputError as exc:
        return _tag_error(s3, ref, tags, policy, f"undecodable {image_format}: {exc.detail}")
    return _Pending(ref, head, tags, started, image=image)


def _judged_video(
    ref: ObjectRef, head: dict[str, Any], tags: dict[str, str], started: float, verdict: VideoVerdict
) -> _Pending:
    decision = verdict.as_decision()
    return _Pending(ref, head, tags, started, decision=decision, extra_tags=s3_video.video_tags(verdict))


def _judge_all(mod: Moderator, policy: Policy, items: list[_Pending]) -> None:
    """One forward pass per `MAX_BATCH_IMAGES` images (one in all for a usual event)."""
    step = mod.settings.max_batch_images
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        embeddings = mod.embed([item.image for item in chunk if item.image is not None])
        for item, decision in zip(chunk, mod.judge_embeddings(embeddings, policy), strict=True):
            item.decision = decision
            item.image = None  # free the pixels as soon as they are judged


def _act(s3: Any, mod: Moderator, item: _Pending) -> ObjectResult:
    tags = item.tags
    verdict = Action.quarantine.value
    if item.decision is not None:
        verdict = item.decision.verdict.value
        merged = merge_tags(item.tags, decision_tags(item.decision) | item.extra_tags)
        if not merged.has_verdict:
            logger.warning(
                "%s: no room for moderation tags (10 user tags); verdict %s not tagged", item.ref, verdict
            )
        if merged.tags != item.tags:
            s3_object.write_tags(s3, item.ref, merged.tags)  # before any move, so a retry knows
        tags = merged.tags
    if verdict != Action.quarantine.value:
        return ObjectResult(item.ref, Outcome.judged, verdict=verdict)

    settings = mod.settings
    if not settings.quarantine_bucket:
        logger.warning("%s: verdict quarantine but QUARANTINE_BUCKET is not set; tagged only", item.ref)
        return ObjectResult(item.ref, Outcome.judged, verdict=verdict, detail="QUARANTINE_BUCKET not set")
    destination = move_to_quarantine(
        s3,
        item.ref,
        item.head,
        tags,
        settings.quarantine_bucket,
        s3_object.quarantine_key(settings, item.ref.key),
    )
    return ObjectResult(item.ref, Outcome.quarantined, verdict=verdict, detail=f"moved to {destination}")


def _tag_error(s3: Any, ref: ObjectRef, tags: dict[str, str], policy: Policy, reason: str) -> ObjectResult:
    merged = merge_tags(tags, error_tags(reason, policy.policy_id))
    if not merged.has_verdict:
        logger.warning("%s: no room for moderation tags (10 user tags); error not tagged: %s", ref, reason)
    if merged.tags != tags:
        s3_object.write_tags(s3, ref, merged.tags)
    return ObjectResult(ref, Outcome.error, verdict=ERROR, detail=reason)


def _logged(result: ObjectResult, started: float, decision: Decision | None = None) -> ObjectResult:
    log_decision(
        logger,
        event="s3_moderation",
        bucket=result.ref.bucket,
        key=result.ref.key,
        version=result.ref.version_id,
        outcome=result.outcome.value,
        verdict=result.verdict,
        top=decision.top if decision else None,
        score=decision.top_score if decision else None,
        policy=decision.policy.policy_id if decision else None,
        detail=result.detail,
        ms=(time.perf_counter() - started) * 1000,
    )
    return result
