"""One verdict for any media: a still, every frame of a multi-frame image, or samples of a video.

HTTP, the S3 flow and the command line all call `judge`; the model sits behind `FrameScorer` (the
Moderator is one), and every limit comes from `MediaLimits` (built from the settings once).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from handler.core.policy import Action, Policy
from handler.core.preprocess import PreprocessConfig
from handler.core.scoring import Decision
from handler.inputs.images import ImageLimits
from handler.media.values import Media, MultiFrame, Still, Video
from handler.settings import Settings
from handler.video.frames import VideoFile
from handler.video.inputs import file_digest
from handler.video.judge import FrameScorer, VideoOptions, judge_frames, video_time_limit_s
from handler.video.multiframe import MultiFrameImage
from handler.video.sampling import SamplingLimits, sampling_key, sampling_seed
from handler.video.verdict import VideoVerdict

MediaKind = Literal["still", "frames", "video"]


@dataclass(frozen=True)
class MediaLimits:
    """Everything judging needs besides the model and the policy."""

    image: ImageLimits
    preprocess: PreprocessConfig
    sample_fps: float
    max_frames: int
    max_duration_s: float
    time_limit_s: float
    options: VideoOptions
    sampling_key: bytes

    @classmethod
    def from_settings(cls, settings: Settings, preprocess: PreprocessConfig) -> MediaLimits:
        return cls(
            image=ImageLimits.from_settings(settings),
            preprocess=preprocess,
            sample_fps=settings.video_sample_fps,
            max_frames=settings.video_max_frames,
            max_duration_s=settings.video_max_duration_s,
            time_limit_s=video_time_limit_s(settings),
            options=VideoOptions.from_settings(settings),
            sampling_key=sampling_key(settings.video_sampling_key),
        )

    def sampling(self, started: float | None = None, cap_s: float | None = None) -> SamplingLimits:
        """Frame limits, the time limit counting from `started` (`time.monotonic()`), at most `cap_s`."""
        limit = self.time_limit_s if cap_s is None else min(self.time_limit_s, cap_s)
        return SamplingLimits(
            sample_fps=self.sample_fps,
            max_frames=self.max_frames,
            max_duration_s=self.max_duration_s,
            max_pixels=self.image.max_pixels,
            preprocess=self.preprocess,
            deadline=(time.monotonic() if started is None else started) + limit,
            time_limit_s=limit,
        )


@dataclass(frozen=True)
class MediaVerdict:
    """The verdict on one medium. `decision` is what responses and tags show (for frames and videos: the
    peak score of each category, flagged categories of the most severe segments); `timeline` has the
    judged frames and flagged segments of a multi-frame image or a video."""

    decision: Decision
    kind: MediaKind
    format: str
    timeline: VideoVerdict | None = None

    @property
    def verdict(self) -> Action:
        return self.decision.verdict

    @property
    def frames(self) -> int:
        return 1 if self.timeline is None else len(self.timeline.frames)


def judge(
    media: Media,
    scorer: FrameScorer,
    policy: Policy,
    limits: MediaLimits,
    *,
    started: float | None = None,
    time_cap_s: float | None = None,
) -> MediaVerdict:
    """Judge one medium. InputError (4xx) when it cannot be judged within the limits."""
    if isinstance(media, Still):
        return MediaVerdict(judge_stills([media.image], scorer, policy)[0], "still", media.format)
    sampling = limits.sampling(started, time_cap_s)
    if isinstance(media, MultiFrame):
        seed = sampling_seed(hashlib.sha256(media.data).digest(), limits.sampling_key)
        timeline = judge_frames(MultiFrameImage(media.data, sampling, seed), scorer, policy, limits.options)
        return MediaVerdict(timeline.as_decision(), "frames", media.format, timeline)
    assert isinstance(media, Video)
    seed = sampling_seed(file_digest(media.path), limits.sampling_key)
    video = VideoFile(media.path, media.format, sampling, seed)
    timeline = judge_frames(video, scorer, policy, limits.options)
    return MediaVerdict(timeline.as_decision(), "video", media.format, timeline)


def judge_stills(images: Sequence[Image.Image], scorer: FrameScorer, policy: Policy) -> list[Decision]:
    """Several stills (model-sized regions) in one forward pass."""
    return scorer.judge_embeddings(scorer.embed(list(images)), policy) if images else []
