"""Indexing a video stream by demuxing alone (no decoding), bounded in time and memory.

One pass over the stream's packets gives its real start and end, its keyframes and its likely scene
cuts. The pass checks the duration limit as it goes, the time limit every few hundred packets, and
refuses streams with more packets than VIDEO_MAX_DURATION_S allows at 1000 frames a second. Keyframe
timestamps live in a compact array; scene-cut candidates in a heap of at most `max_frames`.

A scene cut shows in the packets: a frame coded against the one before it (a P- or B-frame) needs
many more bytes when the picture changes (a cut, a flash) than when it moves a little; and an encoder
that detects a cut starts a keyframe there, earlier than its regular keyframe interval.
"""

from __future__ import annotations

import heapq
from array import array
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from handler.exceptions import InputError
from handler.video.sampling import SamplingLimits, VideoTooLong

#: A predicted frame this many times larger than the running average marks a cut.
CUT_SIZE_RATIO = 3.0
_AVERAGE_WEIGHT = 0.1  # of the newest packet in the running average of predicted-frame sizes
_MAX_FPS = 1000
_CHECK_TIME_EVERY = 256


@dataclass(frozen=True)
class VideoIndex:
    """What demuxing alone tells about the video stream (times in seconds from its first frame)."""

    origin: Fraction  # presentation time of the first frame, in seconds, as the container counts
    duration_s: float
    keyframes: tuple[float, ...]
    packets: int
    frame_s: float  # one frame's duration (or a guess), for matching timestamps
    cuts: tuple[float, ...] = ()  # likely scene cuts, strongest first


def scan(container: Any, stream: Any, limits: SamplingLimits) -> VideoIndex:
    """Demux every packet of the stream once. Raises InputError (corrupt), VideoTooLong (limits)."""
    base = Fraction(stream.time_base)
    rate = stream.average_rate or stream.guessed_rate
    frame_s = float(1 / rate) if rate else 0.04
    max_packets = int(limits.max_duration_s * _MAX_FPS)
    start: int | None = None
    end = 0
    keyframes = array("q")
    cuts: list[tuple[float, int]] = []  # (strength, timestamp), a min-heap of the strongest
    average: float | None = None
    last_gap: int | None = None
    packets = 0
    try:
        for packet in container.demux(stream):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue  # the empty packet that ends demuxing
            start = ts if start is None else min(start, ts)
            end = max(end, ts + (packet.duration or 0))
            packets += 1
            if packets > max_packets:
                raise VideoTooLong(f"the video has more than {max_packets} frames (VIDEO_MAX_DURATION_S)")
            strength = 0.0
            if packet.is_keyframe:
                if keyframes:
                    gap = ts - keyframes[-1]
                    if last_gap is not None and 0 < gap < last_gap / 2:
                        strength = CUT_SIZE_RATIO  # earlier than the regular interval: the encoder saw a cut
                    last_gap = gap
                keyframes.append(ts)
            else:
                size = packet.size
                if average is not None and average > 0 and size >= CUT_SIZE_RATIO * average:
                    strength = size / average
                if average is None:
                    average = float(size)
                else:  # spikes count at most double, so one cut does not hide the next
                    average += _AVERAGE_WEIGHT * (min(size, 2 * average) - average)
            if strength:
                _keep(cuts, (strength, ts), limits.max_frames)
            if packets % _CHECK_TIME_EVERY == 0:
                limits.check_duration(float((end - start) * base))
                limits.check_time(0.0, float((end - start) * base))
        if start is not None:
            limits.check_duration(float((end - start) * base))
    except InputError:
        raise
    except Exception as exc:  # any failure on user bytes is the input's fault
        raise InputError(f"the video could not be read (corrupt or truncated): {exc}") from exc
    if start is None:
        raise InputError("the video stream holds no frames")
    duration = float((end - start) * base)
    if duration <= 0:
        duration = packets * frame_s
    ordered = sorted(float((k - start) * base) for k in keyframes)
    strongest = [float((ts - start) * base) for _, ts in sorted(cuts, reverse=True)]
    return VideoIndex(start * base, duration, tuple(ordered), packets, frame_s, tuple(strongest))


def _keep(heap: list[tuple[float, int]], item: tuple[float, int], size: int) -> None:
    if len(heap) < size:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)
