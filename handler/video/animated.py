"""Animated GIF and WebP as frame sources: every frame is judged, not only the first.

Pillow decodes them (FFmpeg cannot decode animated WebP), one frame at a time. An animation of at most
VIDEO_MAX_FRAMES frames has all of them judged, however briefly each is shown (a flash of one frame
is the classic way to slip content past a first-frame check). A longer one has VIDEO_MAX_FRAMES judged:
the frames on screen at instants spread evenly over its length; the others are passed over unconverted.
"""

from __future__ import annotations

import io
import warnings
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from handler.exceptions import InputError, PayloadTooLarge
from handler.video.frames import SampledFrame
from handler.video.sampling import EPSILON_S, SamplingLimits, fit

#: Browsers show frames that claim 0-10 ms for 100 ms; so do we (else a GIF would have no duration).
_FASTEST_FRAME_MS = 10
_DEFAULT_FRAME_MS = 100
_WHITE = (255, 255, 255, 255)


class AnimatedImage:
    """A GIF or WebP (a file, or bytes), checked against the limits; `frames()` yields the samples."""

    def __init__(self, source: Path | bytes, limits: SamplingLimits) -> None:
        self.source = source
        self.limits = limits
        self.decoded = 0
        with self._open() as image:
            limits.check_pixels(*image.size)
            self.frame_count = int(getattr(image, "n_frames", 1))
            self.starts: list[float] = []
            elapsed = 0.0
            for index in range(self.frame_count):
                self._seek(image, index)
                self.starts.append(elapsed)
                elapsed += _frame_seconds(image)
                limits.check_duration(elapsed)
        self.duration_s = elapsed

    def _open(self) -> Image.Image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return Image.open(io.BytesIO(self.source) if isinstance(self.source, bytes) else self.source)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PayloadTooLarge(f"image has too many pixels to decode safely: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise InputError("the data is not an image in any format Pillow can read") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"the animation could not be read (truncated or corrupt): {exc}") from exc

    def _seek(self, image: Image.Image, index: int) -> None:
        try:
            image.seek(index)
            image.load()  # WebP knows a frame's duration only once it is decoded
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputError(f"frame {index} of the animation could not be decoded: {exc}") from exc
        self.decoded += 1

    def frames(self) -> Iterator[SampledFrame]:
        """Every frame, or (past VIDEO_MAX_FRAMES) the one on screen at each of as many even instants."""
        with self._open() as image:
            for index in self.chosen():
                self._seek(image, index)
                self.limits.check_time(self.starts[index], self.duration_s)
                yield SampledFrame(self.starts[index], fit(_rgb(image), self.limits.shortest_edge))

    def chosen(self) -> list[int]:
        """Indexes of the frames to judge, in order."""
        count = self.limits.max_frames
        if self.frame_count <= count:
            return list(range(self.frame_count))
        instants = [k * self.duration_s / count for k in range(count)]
        return sorted({bisect_right(self.starts, t + EPSILON_S) - 1 for t in instants})


def _frame_seconds(image: Image.Image) -> float:
    duration = image.info.get("duration")
    ms = float(duration) if isinstance(duration, int | float) else 0.0
    return (ms if ms > _FASTEST_FRAME_MS else _DEFAULT_FRAME_MS) / 1000


def _rgb(image: Image.Image) -> Image.Image:
    """The current frame as RGB, transparency on white (as still images are judged)."""
    if image.mode == "RGB":
        return image.copy()
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
