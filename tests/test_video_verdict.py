"""Segments, smoothing, early exit and the video verdict from controlled per-frame scores."""

from __future__ import annotations

import numpy as np
import pytest

from handler.core.policy import Action
from handler.core.scoring import judge
from handler.video.verdict import (
    FrameScore,
    Segment,
    Smoothing,
    counted,
    early_exit_category,
    segments,
    video_verdict,
)
from tests.video_media import colour_policy

POLICY = colour_policy()
B, M, F, X = [0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9], [0.55, 0.05, 0.4]  # bad meh fine weak


def frames(*rows: list[float], step: float = 1.0) -> list[FrameScore]:
    """One sample per row, `step` seconds apart, judged by the colour policy's own rule."""
    return [FrameScore.from_decision(i * step, judge(POLICY, np.array(row))) for i, row in enumerate(rows)]


def test_consecutive_flags_merge_into_segments_with_times_and_peaks() -> None:
    scored = frames(F, B, X, F, M, M, F, B)
    found = segments(scored, POLICY, Smoothing(), end_s=8.0)
    assert found == [
        Segment(1.0, 3.0, "bad", pytest.approx(0.9), Action.quarantine),
        Segment(4.0, 6.0, "meh", pytest.approx(0.9), Action.review),
        Segment(7.0, 8.0, "bad", pytest.approx(0.9), Action.quarantine),  # the last runs to the clip's end
    ]


def test_verdict_is_the_most_severe_segment_and_first_flagged_is_its_start() -> None:
    scored = frames(F, M, F, F, B, F)
    verdict = video_verdict(scored, POLICY, Smoothing(), duration_s=6.0, end_s=6.0, early_exit=False)
    assert verdict.verdict is Action.quarantine
    assert verdict.top == ("bad", pytest.approx(0.9))
    assert verdict.first_flagged_s == 1.0  # the review segment comes first
    decision = verdict.as_decision()
    assert decision.verdict is Action.quarantine
    assert decision.flagged == ["bad", "meh"]
    assert decision.scores == {
        "bad": pytest.approx(0.9),
        "meh": pytest.approx(0.9),
        "fine": pytest.approx(0.9),
    }


def test_nothing_flagged_is_allow_with_the_highest_score_on_top() -> None:
    verdict = video_verdict(frames(F, F), POLICY, Smoothing(), duration_s=2.0, end_s=2.0, early_exit=False)
    assert verdict.verdict is Action.allow
    assert verdict.segments == ()
    assert verdict.top == ("fine", pytest.approx(0.9))
    assert verdict.first_flagged_s is None


def test_safe_categories_never_make_segments() -> None:
    safe_flagged = colour_policy(threshold=0.0)  # even at threshold 0 the safe class is never flagged
    scored = [FrameScore.from_decision(0.0, judge(safe_flagged, np.array(F)))]
    assert {s.category for s in segments(scored, safe_flagged, Smoothing(), end_s=1.0)} == {"bad", "meh"}


@pytest.mark.parametrize(
    ("raw", "k", "n", "expected"),
    [
        ("x.........", 1, 1, "x........."),
        ("....x.....", 2, 3, ".........."),  # a single-frame flag is dropped
        ("...xx.....", 2, 3, "...xx....."),
        ("...x.x....", 2, 3, "...x.x...."),  # two flags within three samples both count
        ("...x..x...", 2, 3, ".........."),
        ("xx", 3, 5, "xx"),  # fewer samples than k: all of them must be flagged
        ("x.", 3, 5, ".."),
    ],
)
def test_k_of_n_smoothing(raw: str, k: int, n: int, expected: str) -> None:
    kept = counted([c == "x" for c in raw], Smoothing(k, n))
    assert "".join("x" if flag else "." for flag in kept) == expected


def test_smoothing_removes_a_single_frame_false_positive_but_keeps_a_real_run() -> None:
    scored = frames(F, B, F, F, F, B, B, F)
    assert [s.start_s for s in segments(scored, POLICY, Smoothing(1, 1), end_s=8.0)] == [1.0, 5.0]
    assert [(s.start_s, s.end_s) for s in segments(scored, POLICY, Smoothing(2, 3), end_s=8.0)] == [
        (5.0, 7.0)
    ]


def test_smoothing_needs_k_within_n() -> None:
    with pytest.raises(ValueError, match="k <= n"):
        Smoothing(3, 2)


def test_early_exit_needs_a_quarantine_category_above_threshold_plus_margin() -> None:
    assert early_exit_category(frames(F, B), POLICY, 0.1, Smoothing()) == "bad"
    assert early_exit_category(frames(F, X), POLICY, 0.1, Smoothing()) is None  # 0.55 < 0.5 + 0.1
    assert early_exit_category(frames(F, X), POLICY, 0.0, Smoothing()) == "bad"
    assert early_exit_category(frames(F, M), POLICY, 0.0, Smoothing()) is None  # review never stops it


def test_early_exit_with_smoothing_waits_for_k_of_the_last_n() -> None:
    smoothing = Smoothing(2, 3)
    assert early_exit_category(frames(F, B), POLICY, 0.1, smoothing) is None
    assert early_exit_category(frames(B, F, B), POLICY, 0.1, smoothing) == "bad"
    assert early_exit_category(frames(B, F, F, B), POLICY, 0.1, smoothing) is None
