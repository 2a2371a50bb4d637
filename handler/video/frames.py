"""Sampled frames of a video file with PyAV, decoding only what the samples need, in bounded memory.

Opening a file reads its packet index once (demuxing only, no decoding): the real duration, the
keyframe times, and whether the file is truncated. Sampling then walks the samples in order; for each
it seeks to the nearest useful keyframe when one lies ahead of the decoder, decodes forward with
non-reference frames skipped, and converts only the frame it keeps, scaled on the fly to the model's
input size. One frame is alive at a time; the caller batches them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from handler.core.preprocess import model_image
from handler.exceptions import InputError
from handler.video.sampling import (
    EPSILON_S,
    SamplingLimits,
    choose_time,
    covered,
    fitted_size,
    sample_interval,
    sample_times,
    seek_point,
)

logger = logging.getLogger(__name__)

#: The demuxer to use for each sniffed format (never FFmpeg's guess: no playlists, no other protocols).
DEMUXERS = {name: name for name in ("mp4", "mov", "webm", "matroska", "avi", "mpegts")}
_OPEN_OPTIONS = {"protocol_whitelist": "file"}
_TRUNCATION_SLACK_S = 1.0
#: A frame is scaled for the model to at most this many times the short side along its long side.
_MAX_SCALED_ASPECT = 16


@dataclass(frozen=True)
class SampledFrame:
    time_s: float
    image: Image.Image


@dataclass(frozen=True)
class VideoIndex:
    """What demuxing alone tells about the video stream (times in seconds from its first frame)."""

    origin: Fraction  # presentation time of the first frame, in seconds, as the container counts
    duration_s: float
    keyframes: tuple[float, ...]
    packets: int
    frame_s: float  # one frame's duration (or a guess), for matching timestamps


class VideoFile:
    """A video file, indexed and checked against the limits; `frames()` yields the samples."""

    def __init__(self, path: Path, video_format: str, limits: SamplingLimits) -> None:
        self.path = path
        self.format = DEMUXERS.get(video_format, video_format)
        self.limits = limits
        self.decoded = 0  # frames the decoder produced (kept or not): the cost of sampling
        with self._open() as container:
            stream = _video_stream(container)
            try:
                width, height = stream.codec_context.width, stream.codec_context.height
            except av.FFmpegError as exc:
                raise InputError(f"the video stream cannot be decoded here: {exc}", status_code=415) from exc
            if not width or not height:
                raise InputError("the video stream has no frame size: the file is corrupt")
            limits.check_pixels(width, height)
            declared = _declared_duration(container, stream)
            if declared is not None:
                limits.check_duration(declared)
            self.index = _scan(container, stream, limits)
        missing = 0.0 if declared is None else declared - self.index.duration_s
        if declared is not None and missing > max(_TRUNCATION_SLACK_S, 0.02 * declared):
            raise InputError(
                f"the video is truncated: it declares {declared:.1f} s but its data ends at "
                f"{self.index.duration_s:.1f} s"
            )
        self.width, self.height = width, height

    @property
    def duration_s(self) -> float:
        return self.index.duration_s

    def _open(self) -> Any:
        try:
            return av.open(str(self.path), format=self.format, options=_OPEN_OPTIONS)
        except av.FFmpegError as exc:
            raise InputError(
                f"the {self.format} file could not be read (corrupt or truncated): {exc}"
            ) from exc

    def frames(self) -> Iterator[SampledFrame]:
        """The sampled frames in time order; decoding stops when the caller stops iterating."""
        at = 0.0
        try:
            with self._open() as container:
                for sample in self._sample(container):
                    at = sample.time_s
                    yield sample
        except av.FFmpegError as exc:  # a seek or a conversion the data does not allow
            raise InputError(f"the video is corrupt near {at:.1f} s: {exc}") from exc

    def _sample(self, container: Any) -> Iterator[SampledFrame]:
        index, limits = self.index, self.limits
        targets = sample_times(index.duration_s, limits.sample_fps, limits.max_frames)
        tolerance = sample_interval(index.duration_s, limits.sample_fps, limits.max_frames) / 2
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"  # frames nothing refers to are never decoded
        decoded: Iterator[Any] | None = None
        last_decoded: float | None = None
        last_taken: float | None = None
        i = 0
        while i < len(targets):
            wanted = choose_time(targets[i], tolerance, index.keyframes, last_taken)
            keyframe = seek_point(wanted, index.keyframes, last_decoded)
            if keyframe is not None or decoded is None:
                if keyframe is not None:
                    container.seek(_pts(index.origin + Fraction(keyframe), stream), stream=stream)
                decoded = iter(container.decode(stream))
            frame, last_decoded = self._decode_until(decoded, stream, wanted, last_decoded)
            if frame is None:
                if last_decoded is not None and targets[i] - last_decoded > 2 * tolerance + index.frame_s:
                    raise InputError(
                        f"the video's frames end at {last_decoded:.1f} s, before the "
                        f"{index.duration_s:.1f} s its packets span: it is corrupt or truncated"
                    )
                return  # at most the last sample's worth was left: its frame was skipped as non-reference
            assert last_decoded is not None  # a frame comes with its time
            last_taken = last_decoded
            yield SampledFrame(last_decoded, self._image(frame))
            i = covered(targets, i, last_decoded, tolerance)

    def _decode_until(
        self, decoded: Iterator[Any], stream: Any, wanted: float, last: float | None
    ) -> tuple[Any, float | None]:
        """Decode until the first frame at or after `wanted` (half a frame early counts); None at the end."""
        index = self.index
        while True:
            try:
                frame = next(decoded, None)
            except av.FFmpegError as exc:
                at = 0.0 if last is None else last
                raise InputError(f"the video is corrupt or truncated near {at:.1f} s: {exc}") from exc
            if frame is None:
                return None, last
            self.decoded += 1
            if frame.pts is not None:
                t = float(Fraction(frame.pts) * stream.time_base - index.origin)
            else:  # no timestamps at all (rare): count frames
                t = 0.0 if last is None else last + index.frame_s
            self.limits.check_time(t, index.duration_s)
            if t >= wanted - index.frame_s / 2 - EPSILON_S and (last is None or t > last - EPSILON_S):
                return frame, t
            last = t

    def _image(self, frame: Any) -> Image.Image:
        """The frame as the model-sized RGB region, scaled by FFmpeg on the way out, rotation applied."""
        cfg = self.limits.preprocess
        width, height = fitted_size(frame.width, frame.height, cfg.shortest_edge)
        longest = _MAX_SCALED_ASPECT * cfg.shortest_edge
        if max(width, height) > longest:  # an extreme strip: scale it whole no wider than this
            factor = longest / max(width, height)
            width, height = max(1, round(width * factor)), max(1, round(height * factor))
        image: Image.Image = frame.to_image(width=width, height=height, interpolation="BICUBIC")
        rotation = int(getattr(frame, "rotation", 0) or 0) % 360
        if rotation:  # the display matrix turns the picture counter-clockwise by this many degrees
            image = image.rotate(rotation, expand=True)
        return model_image(image, cfg)


def _video_stream(container: Any) -> Any:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no"]
        raise InputError(
            f"the file has no video stream (it holds {' and '.join(kinds)} streams): send a video",
            status_code=415,
        )
    return container.streams.video[0]


def _declared_duration(container: Any, stream: Any) -> float | None:
    """The video stream's duration from the header; the container's only when it has no other stream."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        return float(container.duration) / av.time_base
    return None


def _scan(container: Any, stream: Any, limits: SamplingLimits) -> VideoIndex:
    """Demux every packet of the stream once: real start and end, keyframes. Stops past the duration limit."""
    base = stream.time_base
    rate = stream.average_rate or stream.guessed_rate
    frame_s = float(1 / rate) if rate else 0.04
    start: Fraction | None = None
    end = Fraction(0)
    keyframes: list[Fraction] = []
    packets = 0
    try:
        for packet in container.demux(stream):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue  # the empty packet that ends demuxing
            t = Fraction(ts) * base
            start = t if start is None else min(start, t)
            end = max(end, t + Fraction(packet.duration or 0) * base)
            packets += 1
            if packet.is_keyframe:
                keyframes.append(t)
            limits.check_duration(float(end - start))
    except av.FFmpegError as exc:
        raise InputError(f"the video could not be read (corrupt or truncated): {exc}") from exc
    if start is None:
        raise InputError("the video stream holds no frames")
    duration = float(end - start)
    if duration <= 0:
        duration = packets * frame_s
    ordered = sorted(float(k - start) for k in keyframes)
    return VideoIndex(start, duration, tuple(ordered), packets, frame_s)


def _pts(seconds: Fraction, stream: Any) -> int:
    """The stream timestamp of a time that came from one (rounded: float times are not exact)."""
    return round(seconds / Fraction(stream.time_base))
