"""Judging whole clips: batches through a scorer, segments over time, early exit, bounded memory."""

from __future__ import annotations

import time
import tracemalloc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handler.core.moderator import Moderator
from handler.core.policy import Action
from handler.video.frames import SampledFrame, VideoFile
from handler.video.judge import VideoOptions, judge_frames, moderate_video
from handler.video.multiframe import MultiFrameImage
from handler.video.sampling import SamplingLimits, VideoTooLong
from handler.video.verdict import Smoothing
from tests.video_media import (
    BLUE,
    DARK_RED,
    GREEN,
    RED,
    ColourScorer,
    animation,
    colour_policy,
    make_video,
    needs,
)

POLICY = colour_policy()
NO_EXIT = VideoOptions(batch_size=4, early_exit=False)

pytestmark = needs("libx264")


def test_segments_of_a_real_clip(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", [(BLUE, 2), (RED, 1), (BLUE, 1), (GREEN, 2), (BLUE, 1)])
    scorer = ColourScorer()
    verdict = judge_frames(VideoFile(path, "mp4", SamplingLimits()), scorer, POLICY, NO_EXIT)
    assert verdict.verdict is Action.quarantine
    assert [(s.category, s.start_s, s.end_s, s.action) for s in verdict.segments] == [
        ("bad", pytest.approx(2.0), pytest.approx(3.0), Action.quarantine),
        ("meh", pytest.approx(4.0), pytest.approx(6.0), Action.review),
    ]
    assert verdict.segments[0].peak_score == pytest.approx(0.9)
    assert len(verdict.frames) == 1 + 7 + 4  # the first frame, one in every second, the four scene cuts
    assert verdict.duration_s == pytest.approx(7.0)
    assert not verdict.early_exit
    assert scorer.batches == [4, 4, 4]  # VIDEO_BATCH_SIZE frames per forward pass


def test_early_exit_stops_decoding_at_the_first_clear_quarantine(tmp_path: Path) -> None:
    path = make_video(tmp_path / "long.mp4", [(BLUE, 1), (RED, 1), (BLUE, 58)])  # 600 frames
    video = VideoFile(path, "mp4", SamplingLimits())
    verdict = judge_frames(video, ColourScorer(), POLICY, VideoOptions(batch_size=2))
    assert verdict.early_exit
    assert verdict.verdict is Action.quarantine
    assert verdict.frames[-1].time_s == pytest.approx(1.0)  # the cut to red, sampled exactly
    assert [(s.start_s, s.end_s) for s in verdict.segments] == [(pytest.approx(1.0), pytest.approx(2.0))]
    assert video.decoded <= 20  # of 600: decoding stopped within the red second

    full = VideoFile(path, "mp4", SamplingLimits())
    assert len(judge_frames(full, ColourScorer(), POLICY, NO_EXIT).frames) == 1 + 60 + 2  # and the two cuts
    assert full.decoded > 500


def test_a_quarantine_within_the_margin_does_not_stop_early(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", [(BLUE, 1), (DARK_RED, 1), (BLUE, 2)])
    verdict = judge_frames(VideoFile(path, "mp4", SamplingLimits()), ColourScorer(), POLICY, VideoOptions())
    assert verdict.verdict is Action.quarantine  # flagged: 0.55 >= 0.5
    assert not verdict.early_exit  # but not by 0.1: judged to the end
    assert len(verdict.frames) == 1 + 4 + 2  # the first frame, one a second and the two cuts


def test_smoothing_drops_a_one_sample_flash(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", [(BLUE, 2), (RED, 0.1), (BLUE, 2.9)])
    options = VideoOptions(batch_size=4, early_exit=False, smoothing=Smoothing(2, 3))
    verdict = judge_frames(VideoFile(path, "mp4", SamplingLimits()), ColourScorer(), POLICY, options)
    assert verdict.verdict is Action.allow
    assert verdict.segments == ()


def test_animated_gif_flash_between_seconds_is_caught() -> None:
    data = animation("GIF", [(BLUE, 1.5), (RED, 0.3), (BLUE, 2.0)])
    verdict = judge_frames(MultiFrameImage(data, SamplingLimits()), ColourScorer(), POLICY, NO_EXIT)
    assert verdict.verdict is Action.quarantine
    assert [(s.start_s, s.end_s) for s in verdict.segments] == [(pytest.approx(1.5), pytest.approx(1.8))]


class Tracked:
    """A frame source wrapper keeping a weak reference to every image it yields."""

    def __init__(self, inner: VideoFile) -> None:
        self.inner = inner
        self.limits, self.duration_s = inner.limits, inner.duration_s
        self.refs: list[weakref.ref[Any]] = []

    def frames(self) -> Iterator[SampledFrame]:
        for frame in self.inner.frames():
            self.refs.append(weakref.ref(frame.image))
            yield frame

    def alive(self) -> int:
        """Sampled images not yet freed."""
        return sum(ref() is not None for ref in self.refs)


def test_memory_stays_bounded_on_a_long_clip(tmp_path: Path) -> None:
    path = make_video(tmp_path / "long.mp4", [(BLUE, 300)], fps=2, size=(32, 32))  # five minutes
    source = Tracked(VideoFile(path, "mp4", SamplingLimits(max_frames=300)))
    scorer = ColourScorer(source.alive)
    tracemalloc.start()
    try:
        verdict = judge_frames(source, scorer, POLICY, VideoOptions(batch_size=4, early_exit=False))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(verdict.frames) == 300
    assert scorer.most_alive <= 4  # never more frames alive than one batch
    assert peak < 4 * 1024 * 1024  # scores only grow by a few hundred bytes a frame


def test_running_out_of_time_is_an_error_never_a_partial_verdict(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", [(BLUE, 5)])
    late = SamplingLimits(deadline=time.monotonic() - 1, time_limit_s=20)
    with pytest.raises(VideoTooLong, match="too long to judge in one invocation") as stopped:
        judge_frames(VideoFile(path, "mp4", late), ColourScorer(), POLICY, NO_EXIT)
    assert stopped.value.status_code == 413


def test_the_real_model_through_the_same_interface(tmp_path: Path, moderator: Moderator) -> None:
    path = make_video(tmp_path / "a.mp4", [(BLUE, 1), (RED, 2)])
    policy = moderator.policies.default
    # A fixed sampling key: without one each call draws its own instants, and now and then two of them
    # land on one frame of this 3 s clip (fewer frames judged: seen once in CI-like runs; not this test's
    # subject, which the sampling tests cover).
    settings = moderator.settings.model_copy(update={"video_sampling_key": "a fixed key for this test"})
    verdict = moderate_video(path, "mp4", moderator, policy, settings, 224)
    # The first, one a second (jittered), and the cut at 1 s unless the second's sample already lands on it.
    assert len(verdict.frames) in (1 + 3, 1 + 3 + 1) or verdict.early_exit
    assert set(verdict.frames[0].scores) == {c.name for c in policy.categories}
    assert verdict.verdict in set(Action)
