"""Which instants of a video get judged, and the limits every frame source obeys (pure functions).

A clip of `duration_s` is cut into intervals of `1 / sample_fps` seconds (stretched so that at most
`max_frames` of them span the whole clip, never only its beginning). The first frame is judged, and
one instant in each interval, drawn at random from a per-object seed (a keyed hash of the bytes'
digest: a retry judges the same frames, an uploader without the key cannot tell which). A keyframe
stands in for the instant only when it lies within a small window around it (`SNAP_FRACTION` of the
interval either side), where it is far cheaper to decode; otherwise the exact instant is decoded. So
an uploader who puts a benign keyframe in every interval and flagged frames around them has most
samples land on the flagged ones. Scene cuts found while indexing (`handler.video.index`) add exact
samples within the frame cap.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import secrets
import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from handler.core.preprocess import PreprocessConfig
from handler.exceptions import PayloadTooLarge

#: Two timestamps closer than this are the same instant (container rounding).
EPSILON_S = 1e-3


class VideoTooLong(PayloadTooLarge):
    """Longer than VIDEO_MAX_DURATION_S, or not judged within the time one invocation allows."""


@dataclass(frozen=True)
class SamplingLimits:
    """What a frame source may sample and decode; `deadline` is a `time.monotonic()` instant or None."""

    sample_fps: float = 1.0
    max_frames: int = 120
    max_duration_s: float = 600.0
    max_pixels: int = 40_000_000
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    deadline: float | None = None
    time_limit_s: float | None = None  # only for the message when the deadline passes

    def check_duration(self, duration_s: float) -> None:
        if duration_s > self.max_duration_s + EPSILON_S:
            raise VideoTooLong(
                f"video is {duration_s:.1f} s long; "
                f"the limit is {self.max_duration_s:g} s (VIDEO_MAX_DURATION_S)"
            )

    def check_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise PayloadTooLarge(
                f"video frames are {width}x{height} = {width * height} pixels; "
                f"the limit is {self.max_pixels} (MAX_IMAGE_PIXELS)"
            )

    def check_time(self, position_s: float, duration_s: float) -> None:
        """Raise once the deadline has passed: the clip is never judged on its first part alone."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            limit = f" of {self.time_limit_s:g} s" if self.time_limit_s is not None else ""
            raise VideoTooLong(
                f"video not judged: the time limit{limit} (VIDEO_TIME_LIMIT_S) ran out at {position_s:.1f} s "
                f"of {duration_s:.1f} s; it is too long to judge in one invocation. Lower "
                "VIDEO_MAX_DURATION_S or VIDEO_MAX_FRAMES, or raise the function Timeout"
            )


def sample_interval(duration_s: float, sample_fps: float, max_frames: int) -> float:
    """Seconds between samples: 1 / sample_fps, stretched so that max_frames samples span the clip."""
    return max(1.0 / sample_fps, duration_s / max_frames)


def choose_time(target: float, tolerance: float, keyframes: Sequence[float], after: float | None) -> float:
    """The keyframe nearest `target` within `tolerance` (later than `after`), else `target` itself."""
    low = bisect_left(keyframes, target - tolerance)
    high = bisect_right(keyframes, target + tolerance - EPSILON_S)
    candidates = [k for k in keyframes[low:high] if after is None or k > after + EPSILON_S]
    return min(candidates, key=lambda k: abs(k - target)) if candidates else target


def seek_point(wanted: float, keyframes: Sequence[float], last_decoded: float | None) -> float | None:
    """The keyframe to seek to before decoding up to `wanted`, or None to keep decoding forward.

    Seeking pays only when a keyframe lies after the last decoded frame: otherwise the decoder would go
    back and decode frames it has already been through.
    """
    index = bisect_right(keyframes, wanted + EPSILON_S) - 1
    if index < 0:
        return None
    keyframe = keyframes[index]
    return keyframe if keyframe > (last_decoded if last_decoded is not None else 0.0) + EPSILON_S else None


#: A keyframe within this fraction of the interval either side of a sampled instant may stand in for it.
SNAP_FRACTION = 0.125


@dataclass(frozen=True, order=True)
class Target:
    """An instant to judge, and how far from it a keyframe may stand in for it (0: decode it exactly)."""

    time_s: float
    window_s: float = 0.0


def plan(
    duration_s: float, sample_fps: float, max_frames: int, seed: int, cuts: Sequence[float] = ()
) -> list[Target]:
    """The first frame, one jittered instant per interval, then scene cuts (strongest first) not already
    an instant; at most max_frames in all and no more cuts than intervals; in time order."""
    interval = sample_interval(duration_s, sample_fps, max_frames)
    count = max(1, math.ceil(duration_s / interval - EPSILON_S))
    regular = jittered_times(duration_s, interval, min(count, max_frames), seed)
    window = interval * SNAP_FRACTION
    targets = [Target(0.0)] + [Target(t, window) for t in regular]  # the first frame (the thumbnail), always
    if len(targets) > max_frames:
        del targets[1]
    spare = min(max_frames - len(targets), len(regular))
    for cut in cuts:
        if spare <= 0:
            break
        if all(abs(cut - t.time_s) > EPSILON_S for t in targets):  # decoded exactly, never snapped
            targets.append(Target(cut))
            spare -= 1
    return sorted(targets)


def covered(targets: Sequence[Target], start: int, taken_s: float) -> int:
    """Index of the first target after `start` that a frame taken at `taken_s` does not already serve."""
    index = start + 1
    while index < len(targets) and targets[index].time_s - targets[index].window_s <= taken_s + EPSILON_S:
        index += 1
    return index


def fitted_size(width: int, height: int, shortest_edge: int) -> tuple[int, int]:
    """The size with the shorter side at `shortest_edge`, computed as the model's preprocessing does
    (so that it does not resize again)."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(shortest_edge * long / short)
    return (shortest_edge, new_long) if width <= height else (new_long, shortest_edge)


@lru_cache
def sampling_key(configured: str | None) -> bytes:
    """VIDEO_SAMPLING_KEY, or a random key for this process (a retry elsewhere then samples elsewhere)."""
    return configured.encode() if configured else secrets.token_bytes(32)


def sampling_seed(digest: bytes, key: bytes) -> int:
    """A per-object seed: a keyed hash of the bytes' digest (the same bytes sample the same instants)."""
    return int.from_bytes(hmac.new(key, digest, hashlib.sha256).digest()[:8], "big")


def jittered_times(duration_s: float, interval: float, count: int, seed: int) -> list[float]:
    """`count` instants, the k-th drawn uniformly from [k * interval, (k + 1) * interval) (within the clip).

    Without the seed an uploader cannot tell which instant of each interval is judged.
    """
    rng = random.Random(seed)
    times = []
    for k in range(count):
        start = k * interval
        if start >= duration_s:
            break
        times.append(start + rng.random() * min(interval, duration_s - start))
    return times
