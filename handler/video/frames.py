"""Sampled frames of a video file with PyAV, decoding only what the samples need, in bounded memory.

Opening a file reads its packet index once (`handler.video.index`: demuxing only, no decoding): the
real duration, the keyframe times, likely scene cuts, and whether the file is truncated. Sampling then
walks the planned instants in order (`sampling.plan`: jittered per object, scene cuts added); for each
it seeks to the nearest useful keyframe when one lies ahead of the decoder and decodes forward, passing
over non-reference frames except near the instant (so the frame on screen then is decoded whatever its
type: content hidden in B-frames is content too), and converts only the frame it keeps, scaled on the
fly to the model's region. One frame is alive at a time; the caller batches them.
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
from handler.video.index import scan
from handler.video.sampling import (
    EPSILON_S,
    SamplingLimits,
    choose_time,
    covered,
    fitted_size,
    plan,
    seek_point,
)

logger = logging.getLogger(__name__)

#: The demuxer to use for each sniffed format (never FFmpeg's guess: no playlists, no other protocols).
DEMUXERS = {name: name for name in ("mp4", "mov", "webm", "matroska", "avi", "mpegts")}
#: Only local files; probing the stream's format reads at most 8 MB and 10 s of it.
_OPEN_OPTIONS = {"protocol_whitelist": "file", "probesize": str(8 << 20), "analyzeduration": "10000000"}
_TRUNCATION_SLACK_S = 1.0
#: Non-reference frames within this many frames of a sampled instant are decoded; the others skipped.
_NEAR_FRAMES = 3
#: A frame is scaled for the model to at most this many times the short side along its long side.
_MAX_SCALED_ASPECT = 16


@dataclass(frozen=True)
class SampledFrame:
    time_s: float
    image: Image.Image


@dataclass(frozen=True)
class _Decoded:
    frame: Any
    time_s: float


class VideoFile:
    """A video file, indexed and checked against the limits; `frames()` yields the samples."""

    def __init__(self, path: Path, video_format: str, limits: SamplingLimits, seed: int = 0) -> None:
        self.path = path
        self.format = DEMUXERS.get(video_format, video_format)
        self.limits = limits
        self.seed = seed
        self.decoded = 0  # frames the decoder produced (kept or not): the cost of sampling
        self._wanted = 0.0  # the instant being sought (see `_decode`)
        try:
            self._index(limits)
        except InputError:
            raise
        except Exception as exc:  # any failure on user bytes is the input's fault
            raise InputError(
                f"the {self.format} file could not be read (corrupt or unsupported): {exc}"
            ) from exc

    def _index(self, limits: SamplingLimits) -> None:
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
            self.index = scan(container, stream, limits)
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
        except Exception as exc:  # any failure on user bytes is the input's fault
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
        except InputError:
            raise
        except Exception as exc:  # a seek, a decode or a conversion the data does not allow
            raise InputError(f"the {self.format} video is corrupt near {at:.1f} s: {exc}") from exc

    def _sample(self, container: Any) -> Iterator[SampledFrame]:
        """For each planned instant, the frame on screen then: the last one decoded at or before it."""
        index, limits = self.index, self.limits
        targets = plan(index.duration_s, limits.sample_fps, limits.max_frames, self.seed, index.cuts)
        stream = container.streams.video[0]
        decoded: Iterator[Any] | None = None
        on_screen: _Decoded | None = None  # the latest frame at or before the instant, in this run
        ahead: _Decoded | None = None  # decoded, but past the instant: it may serve the next one
        last_taken: float | None = None
        i = 0
        while i < len(targets):
            target = targets[i]
            wanted = choose_time(target.time_s, target.window_s, index.keyframes, last_taken)
            self._wanted = wanted
            last_decoded = ahead.time_s if ahead else on_screen.time_s if on_screen else None
            keyframe = seek_point(wanted, index.keyframes, last_decoded)
            if keyframe is not None or decoded is None:
                if keyframe is not None:
                    container.seek(_pts(index.origin + Fraction(keyframe), stream), stream=stream)
                    on_screen = ahead = None
                decoded = self._decode(container, stream)
            while True:
                if ahead is not None and ahead.time_s <= wanted + EPSILON_S:
                    on_screen, ahead = ahead, None
                if ahead is not None:
                    break
                ahead = self._next(decoded, stream, on_screen)
                if ahead is None:  # the stream ended: its last frame is on screen until the end
                    if on_screen is not None and wanted - on_screen.time_s > 1.0 + 2 * index.frame_s:
                        raise InputError(
                            f"the video's frames end at {on_screen.time_s:.1f} s, before the "
                            f"{index.duration_s:.1f} s its packets span: it is corrupt or truncated"
                        )
                    break
            choice = on_screen if on_screen is not None else ahead  # before the first frame: the first
            if choice is None:
                return
            if choice is ahead:
                on_screen, ahead = ahead, None
            if last_taken is None or choice.time_s > last_taken + EPSILON_S:
                last_taken = choice.time_s
                yield SampledFrame(choice.time_s, self._image(choice.frame))
            i = covered(targets, i, last_taken)

    def _decode(self, container: Any, stream: Any) -> Iterator[Any]:
        """Decoded frames from the current position. Frames nothing refers to (most B-frames) are skipped
        unless they lie within a few frames of the instant being sought: they cost nothing to pass over,
        and the one on screen at the instant is always decoded, whatever its type."""
        index, context = self.index, stream.codec_context
        base = Fraction(stream.time_base)
        for packet in container.demux(stream):
            if packet.pts is not None:
                t = float(packet.pts * base - index.origin)
                near = self._wanted - _NEAR_FRAMES * index.frame_s - EPSILON_S <= t
                near = near and t <= self._wanted + _NEAR_FRAMES * index.frame_s
                context.skip_frame = "DEFAULT" if near else "NONREF"
            yield from packet.decode()

    def _next(self, decoded: Iterator[Any], stream: Any, before: _Decoded | None) -> _Decoded | None:
        """The next decoded frame and its time, checked against the pixel and time limits (a stream may
        change size midway); None at the end."""
        try:
            frame = next(decoded, None)
        except av.FFmpegError as exc:
            at = 0.0 if before is None else before.time_s
            raise InputError(f"the video is corrupt or truncated near {at:.1f} s: {exc}") from exc
        if frame is None:
            return None
        self.decoded += 1
        self.limits.check_pixels(frame.width, frame.height)
        if frame.pts is not None:
            t = float(Fraction(frame.pts) * stream.time_base - self.index.origin)
        else:  # no timestamps at all (rare): count frames
            t = 0.0 if before is None else before.time_s + self.index.frame_s
        self.limits.check_time(t, self.index.duration_s)
        return _Decoded(frame, t)

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


def _pts(seconds: Fraction, stream: Any) -> int:
    """The stream timestamp of a time that came from one (rounded: float times are not exact)."""
    return round(seconds / Fraction(stream.time_base))
