"""Video objects (and animated GIF/WebP) in the S3 flow: judged within the invocation's time, or not at all.

A video is downloaded to a temporary file (streamed, within the size limit), judged, and the file is
deleted. Each video gets VIDEO_TIME_LIMIT_S; one that cannot be judged within it raises `VideoTooLong`
and is tagged as an error saying so, never judged on its first part alone. So that several videos in one
SQS batch cannot push the invocation past its timeout, a video that would start too late is deferred:
its result is a retryable failure and SQS delivers it again, to an invocation of its own.
"""

from __future__ import annotations

import time
from typing import Any

from handler.core.moderator import Moderator
from handler.core.policy import Policy
from handler.media.judge import MediaLimits, MediaVerdict, judge
from handler.media.values import MultiFrame, Video
from handler.s3.events import ObjectRef
from handler.s3.objects import body_chunks
from handler.s3.tags import FIRST_FLAGGED
from handler.settings import Settings
from handler.video.inputs import spooled, too_large
from handler.video.judge import video_time_limit_s


class VideoDeferred(RuntimeError):
    """Too little of the invocation is left to judge this video now; a later delivery will."""

    transient = True  # handler.s3.faults.is_transient: retry (SQS redelivers, Batch Operations retries)


class InvocationClock:
    """The time one invocation has for its videos (`FUNCTION_TIMEOUT_S` from the template)."""

    def __init__(self, settings: Settings) -> None:
        self.started = time.monotonic()
        self.timeout_s = settings.function_timeout_s
        self.limit_s = video_time_limit_s(settings)
        self.videos = 0

    def start_video(self) -> float:
        """The instant the video's time limit counts from; VideoDeferred when it would end too late.

        The first video of an invocation always starts. A later one starts only while at least its time
        limit plus half the reserve (timeout - limit, for tagging and moves) is left.
        """
        now = time.monotonic()
        elapsed = now - self.started
        reserve = max(self.timeout_s - self.limit_s, 0.0)
        if self.videos and elapsed + self.limit_s > self.timeout_s - reserve / 2:
            raise VideoDeferred(
                f"video deferred to a later invocation: {elapsed:.1f} s of this {self.timeout_s:g} s "
                f"invocation are spent and a video may take {self.limit_s:g} s"
            )
        self.videos += 1
        return now


def video_size_limit(settings: Settings) -> int:
    """MAX_VIDEO_BYTES, within MAX_OBJECT_BYTES when that is set."""
    if settings.max_object_bytes is None:
        return settings.max_video_bytes
    return min(settings.max_video_bytes, settings.max_object_bytes)


def judge_video_object(
    s3: Any,
    mod: Moderator,
    policy: Policy,
    limits: MediaLimits,
    ref: ObjectRef,
    size: int,
    video_format: str,
    clock: InvocationClock,
) -> MediaVerdict:
    """Download (streamed) and judge one video version of `size` bytes. InputError: tag it as an error."""
    limit = video_size_limit(mod.settings)
    if size > limit:
        raise too_large(size, limit)
    started = clock.start_video()
    with spooled(body_chunks(s3, ref), limit) as path:
        return judge(Video(path, video_format), mod, policy, limits, started=started)


def judge_frames_object(
    media: MultiFrame, mod: Moderator, policy: Policy, limits: MediaLimits, clock: InvocationClock
) -> MediaVerdict:
    """Every frame of a multi-frame image (GIF, WebP, APNG, TIFF pages...), on the invocation clock."""
    return judge(media, mod, policy, limits, started=clock.start_video())


def video_tags(verdict: MediaVerdict) -> dict[str, str]:
    """Tags only videos and multi-frame images get, after the usual ones: where the first flagged
    segment starts."""
    first = verdict.timeline.first_flagged_s if verdict.timeline is not None else None
    return {} if first is None else {FIRST_FLAGGED: f"{first:.1f}"}
