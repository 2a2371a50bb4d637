"""Judging a video: sampled frames in batches through the image tower, scores over time, a verdict.

Frames come from a source one at a time (`VideoFile` for containers, `AnimatedImage` for GIF/WebP);
`VIDEO_BATCH_SIZE` of them go through the model together and are dropped once scored, so memory does
not grow with the clip's length. With early exit on, decoding stops at the end of the batch in which a
quarantine category shows clearly (see `video_verdict.early_exit_category`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from handler.core.policy import Policy
from handler.core.scoring import Decision
from handler.exceptions import InputError
from handler.inputs.images import sniff_image_format
from handler.settings import Settings
from handler.video.animated import AnimatedImage
from handler.video.formats import sniff_video_format
from handler.video.frames import SampledFrame, VideoFile
from handler.video.sampling import SamplingLimits, sample_interval
from handler.video.verdict import FrameScore, Smoothing, VideoVerdict, early_exit_category, video_verdict

#: Image formats that may be animated, and so are judged frame by frame on the video path.
ANIMATED_FORMATS = frozenset({"gif", "webp"})
#: Without VIDEO_TIME_LIMIT_S, a video gets the function timeout less this (for download, tags, moves).
_TIMEOUT_RESERVE_S = 10.0


class FrameScorer(Protocol):
    """What judging needs from the model (the `Moderator` is one)."""

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def judge_embeddings(self, embeddings: np.ndarray, policy: Policy) -> list[Decision]: ...


class FrameSource(Protocol):
    @property
    def limits(self) -> SamplingLimits: ...

    @property
    def duration_s(self) -> float: ...

    def frames(self) -> Iterator[SampledFrame]: ...


@dataclass(frozen=True)
class VideoOptions:
    batch_size: int = 16
    early_exit: bool = True
    early_exit_margin: float = 0.1
    smoothing: Smoothing = field(default_factory=Smoothing)

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoOptions:
        return cls(
            batch_size=settings.video_batch_size,
            early_exit=settings.video_early_exit,
            early_exit_margin=settings.video_early_exit_margin,
            smoothing=Smoothing(settings.video_smoothing_k, settings.video_smoothing_n),
        )


def video_time_limit_s(settings: Settings) -> float:
    """VIDEO_TIME_LIMIT_S, else what FUNCTION_TIMEOUT_S leaves after a reserve (20 s of the default 30)."""
    if settings.video_time_limit_s is not None:
        return settings.video_time_limit_s
    timeout = settings.function_timeout_s
    return max(timeout - _TIMEOUT_RESERVE_S, timeout / 2)


def sampling_limits(
    settings: Settings, shortest_edge: int, started: float | None = None, cap_s: float | None = None
) -> SamplingLimits:
    """The limits from the settings; the time limit counts from `started` (a `time.monotonic()`) and is
    at most `cap_s` when the caller gives up sooner than the function does (API Gateway: 29 s)."""
    limit = video_time_limit_s(settings)
    if cap_s is not None:
        limit = min(limit, cap_s)
    return SamplingLimits(
        sample_fps=settings.video_sample_fps,
        max_frames=settings.video_max_frames,
        max_duration_s=settings.video_max_duration_s,
        max_pixels=settings.max_image_pixels,
        shortest_edge=shortest_edge,
        deadline=(time.monotonic() if started is None else started) + limit,
        time_limit_s=limit,
    )


def media_kind(head: bytes) -> str | None:
    """The video container, or `gif`/`webp`, named by a file's first bytes; None for anything else."""
    video = sniff_video_format(head)
    if video is not None:
        return video
    image = sniff_image_format(head)
    return image if image in ANIMATED_FORMATS else None


def open_source(source: Path | bytes, kind: str, limits: SamplingLimits) -> FrameSource:
    """Index and check a file (or, for GIF/WebP, bytes) against the limits; raises InputError if bad."""
    if kind in ANIMATED_FORMATS:
        return AnimatedImage(source, limits)
    if isinstance(source, bytes):
        raise TypeError("video containers are read from files")
    return VideoFile(source, kind, limits)


def judge_frames(
    source: FrameSource, scorer: FrameScorer, policy: Policy, options: VideoOptions
) -> VideoVerdict:
    """Score the source's frames batch by batch; stop early if allowed and a quarantine is clear."""
    scored: list[FrameScore] = []
    batch: list[SampledFrame] = []
    stopped = False
    frames = source.frames()
    try:
        for sample in frames:
            batch.append(sample)
            if len(batch) >= options.batch_size:
                stopped = _score(batch, scorer, policy, options, scored)
                batch = []
                if stopped:
                    break
        if batch:
            stopped = _score(batch, scorer, policy, options, scored)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # stops decoding and closes the container at once
    if not scored:
        raise InputError("no frame of the video could be decoded")
    end_s = source.duration_s
    if stopped:
        limits = source.limits
        interval = sample_interval(source.duration_s, limits.sample_fps, limits.max_frames)
        end_s = min(source.duration_s, scored[-1].time_s + interval)
    return video_verdict(
        scored, policy, options.smoothing, duration_s=source.duration_s, end_s=end_s, early_exit=stopped
    )


def _score(
    batch: list[SampledFrame],
    scorer: FrameScorer,
    policy: Policy,
    options: VideoOptions,
    scored: list[FrameScore],
) -> bool:
    """Add the batch's scores to `scored`; True (frames after the trigger dropped) on early exit."""
    decisions = scorer.judge_embeddings(scorer.embed([sample.image for sample in batch]), policy)
    for sample, decision in zip(batch, decisions, strict=True):
        scored.append(FrameScore.from_decision(sample.time_s, decision))
        if options.early_exit and early_exit_category(
            scored, policy, options.early_exit_margin, options.smoothing
        ):
            return True
    return False


def moderate_video(
    source: Path | bytes,
    kind: str,
    scorer: FrameScorer,
    policy: Policy,
    settings: Settings,
    shortest_edge: int,
    *,
    started: float | None = None,
    time_cap_s: float | None = None,
) -> VideoVerdict:
    """Open, sample and judge one video within the settings' limits (time counted from `started`)."""
    limits = sampling_limits(settings, shortest_edge, started, time_cap_s)
    return judge_frames(
        open_source(source, kind, limits), scorer, policy, VideoOptions.from_settings(settings)
    )
