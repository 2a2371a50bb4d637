"""From per-frame scores to a verdict over time: smoothing, segments, early exit (pure functions).

A sampled frame stands for the time from its instant to the next sample's. A category is flagged on a
frame by the policy's own rule (at or above its threshold, never for the safe class); with smoothing
"k of n", a flag counts only when at least k of some n consecutive samples around it are flagged, which
removes single-frame false positives. Consecutive counted flags of one category merge into a segment.
The video's verdict is the most severe action among its segments; none -> allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from handler.core.policy import Action, Category, Policy
from handler.core.scoring import Decision


@dataclass(frozen=True)
class FrameScore:
    time_s: float
    scores: Mapping[str, float]
    flagged: frozenset[str]

    @classmethod
    def from_decision(cls, time_s: float, decision: Decision) -> FrameScore:
        return cls(time_s, dict(decision.scores), frozenset(decision.flagged))


@dataclass(frozen=True)
class Smoothing:
    """Count a flag only when k of n consecutive samples containing it are flagged (1 of 1 = off)."""

    k: int = 1
    n: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"smoothing needs 1 <= k <= n, got k={self.k}, n={self.n}")


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    category: str
    peak_score: float
    action: Action


@dataclass(frozen=True)
class VideoVerdict:
    verdict: Action
    segments: tuple[Segment, ...]
    frames: tuple[FrameScore, ...]
    duration_s: float
    early_exit: bool
    policy: Policy

    @property
    def top(self) -> tuple[str, float]:
        """The most severe segment's category and peak; without segments, the highest score seen."""
        if self.segments:
            worst = max(self.segments, key=lambda s: (s.action.severity, s.peak_score))
            return worst.category, worst.peak_score
        peaks = self.peak_scores
        name = max(peaks, key=peaks.__getitem__)
        return name, peaks[name]

    @property
    def peak_scores(self) -> dict[str, float]:
        return {c.name: max(f.scores[c.name] for f in self.frames) for c in self.policy.categories}

    @property
    def first_flagged_s(self) -> float | None:
        """Where the first review or quarantine segment starts (None when there is none)."""
        starts = [s.start_s for s in self.segments if s.action is not Action.allow]
        return min(starts) if starts else None

    def as_decision(self) -> Decision:
        """The verdict in the shape still images have (for tags and logs)."""
        top, score = self.top
        ordered = sorted(self.segments, key=lambda s: (-s.action.severity, -s.peak_score))
        return Decision(
            verdict=self.verdict,
            flagged=list(dict.fromkeys(s.category for s in ordered)),
            scores=self.peak_scores,
            top=top,
            top_score=score,
            policy=self.policy,
        )


def counted(raw: Sequence[bool], smoothing: Smoothing) -> list[bool]:
    """`raw` flags that lie in a window of n consecutive samples holding at least k flags.

    Fewer samples than k in all: k becomes the number of samples (a one-frame clip can still be flagged).
    """
    size = len(raw)
    k, n = min(smoothing.k, size), min(smoothing.n, size)
    kept = [False] * size
    for start in range(max(1, size - n + 1)):
        window = range(start, min(start + n, size))
        if sum(raw[i] for i in window) >= k:
            for i in window:
                kept[i] = kept[i] or raw[i]
    return kept


def segments(
    frames: Sequence[FrameScore], policy: Policy, smoothing: Smoothing, end_s: float
) -> list[Segment]:
    """Runs of counted flags per category; a run ends where the next sample begins (or at `end_s`)."""
    found: list[Segment] = []
    for category in policy.categories:
        if category.safe:
            continue
        flags = counted([category.name in f.flagged for f in frames], smoothing)
        start: int | None = None
        for i, flag in enumerate([*flags, False]):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                found.append(_segment(frames, category, start, i, end_s))
                start = None
    return sorted(found, key=lambda s: (s.start_s, -s.action.severity, s.category))


def _segment(
    frames: Sequence[FrameScore], category: Category, first: int, stop: int, end_s: float
) -> Segment:
    return Segment(
        start_s=frames[first].time_s,
        end_s=frames[stop].time_s if stop < len(frames) else max(end_s, frames[stop - 1].time_s),
        category=category.name,
        peak_score=max(f.scores[category.name] for f in frames[first:stop]),
        action=category.action,
    )


def early_exit_category(
    frames: Sequence[FrameScore], policy: Policy, margin: float, smoothing: Smoothing
) -> str | None:
    """A quarantine category clearly present in the latest samples (k of the last n at threshold + margin).

    Checked after every new frame; once it answers, the verdict can only be quarantine, so decoding stops.
    """
    window = frames[-smoothing.n :]
    for category in policy.categories:
        if category.safe or category.action is not Action.quarantine:
            continue
        bar = category.threshold + margin
        if sum(f.scores[category.name] >= bar for f in window) >= smoothing.k:
            return category.name
    return None


def video_verdict(
    frames: Sequence[FrameScore],
    policy: Policy,
    smoothing: Smoothing,
    *,
    duration_s: float,
    end_s: float,
    early_exit: bool,
) -> VideoVerdict:
    """Segments and the verdict; `end_s` is where the last sample's time ends (the clip's end unless it
    stopped early)."""
    found = segments(frames, policy, smoothing, end_s)
    verdict = max((s.action for s in found), key=lambda a: a.severity, default=Action.allow)
    return VideoVerdict(verdict, tuple(found), tuple(frames), duration_s, early_exit, policy)
