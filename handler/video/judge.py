"""Judging a video: sampled frames in batches through the image tower, scores over time, a verdict.

Frames come from a source one at a time (`VideoFile` for containers, `MultiFrameImage` for images);
`VIDEO_BATCH_SIZE` of them go through the model together and are dropped once scored, so memory does
not grow with the clip's length. With early exit on, decoding stops at the end of the batch in which a
quarantine category shows clearly (see `video_verdict.early_exit_category`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from handler.core.policy import Policy
from handler.core.preprocess import PreprocessConfig
from handler.core.scoring import Decision
from handler.exceptions import InputError
from handler.settings import Settings
from handler.video.formats import MULTI_FRAME_FORMATS
from handler.video.frames import SampledFrame, VideoFile
from handler.video.inputs import file_digest
from handler.video.multiframe import MultiFrameImage
from handler.video.sampling import SamplingLimits, sample_interval, sampling_key, sampling_seed
from handler.video.verdict import FrameScore, Smoothing, VideoVerdict, early_exit_category, video_verdict

ANIMATED_FORMATS = MULTI_FRAME_FORMATS  # the S3 flow's name for it
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
    settings: Settings,
    preprocess: PreprocessConfig | int,
    started: float | None = None,
    cap_s: float | None = None,
) -> SamplingLimits:
    """The limits from the settings; the time limit counts from `started` (a `time.monotonic()`) and is
    at most `cap_s` when the caller gives up sooner than the function does (API Gateway: 29 s).
    `preprocess` may be just the shortest edge (the region is then that square)."""
    if isinstance(preprocess, int):
        preprocess = PreprocessConfig(shortest_edge=preprocess, crop_height=preprocess, crop_width=preprocess)
    limit = video_time_limit_s(settings)
    if cap_s is not None:
        limit = min(limit, cap_s)
    return SamplingLimits(
        sample_fps=settings.video_sample_fps,
        max_frames=settings.video_max_frames,
        max_duration_s=settings.video_max_duration_s,
        max_pixels=settings.max_image_pixels,
        preprocess=preprocess,
        deadline=(time.monotonic() if started is None else started) + limit,
        time_limit_s=limit,
    )


def open_source(source: Path | bytes, kind: str, limits: SamplingLimits, seed: int = 0) -> FrameSource:
    """Index and check a file (or, for images, bytes) against the limits; raises InputError if bad."""
    if kind in MULTI_FRAME_FORMATS:
        return MultiFrameImage(source if isinstance(source, bytes) else source.read_bytes(), limits, seed)
    if isinstance(source, bytes):
        raise TypeError("video containers are read from files")
    return VideoFile(source, kind, limits, seed)


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
    preprocess: PreprocessConfig | int,
    *,
    started: float | None = None,
    time_cap_s: float | None = None,
) -> VideoVerdict:
    """Open, sample and judge one video within the settings' limits (time counted from `started`).

    Kept for the S3 flow; new callers use `handler.media.judge.judge`.
    """
    limits = sampling_limits(settings, preprocess, started, time_cap_s)
    digest = hashlib.sha256(source).digest() if isinstance(source, bytes) else file_digest(source)
    seed = sampling_seed(digest, sampling_key(settings.video_sampling_key))
    return judge_frames(
        open_source(source, kind, limits, seed), scorer, policy, VideoOptions.from_settings(settings)
    )
