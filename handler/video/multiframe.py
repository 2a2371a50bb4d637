"""Multi-frame images as frame sources: every frame is judged, not only the first.

GIF, WebP, APNG, multi-page TIFF, MPO: whatever Pillow reads with more than one frame. Pillow decodes
them (FFmpeg cannot decode animated WebP), one frame at a time, each cut straight to the model-sized
region. An image of at most VIDEO_MAX_FRAMES frames has all of them judged, however briefly each is
shown (a flash of one frame is the classic way to slip content past a first-frame check; so is an APNG
whose default image is benign). A longer one has VIDEO_MAX_FRAMES judged: the frames on screen at
instants spread over its length, each jittered within its interval (see `sampling.jittered_times`).
Pages without a duration (TIFF, MPO) count as 100 ms each. Every frame's size is checked on its own.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from collections.abc import Iterator

from PIL import Image

from handler.core.preprocess import model_image
from handler.inputs.images import check_pixels, decoding, orientation
from handler.video.frames import SampledFrame
from handler.video.sampling import EPSILON_S, SamplingLimits, jittered_times

#: Browsers show frames that claim 0-10 ms for 100 ms; so do we (else a GIF would have no duration).
_FASTEST_FRAME_MS = 10
_DEFAULT_FRAME_MS = 100


class MultiFrameImage:
    """A multi-frame image's bytes, checked against the limits; `frames()` yields the samples."""

    def __init__(self, data: bytes, limits: SamplingLimits, seed: int = 0) -> None:
        self.data = data
        self.limits = limits
        self.seed = seed
        self.decoded = 0
        with self._open() as image, decoding(self._what(image)):
            self.format = (image.format or "image").lower()
            self.frame_count = int(getattr(image, "n_frames", 1))
            self.orientation = orientation(image)
            self.starts: list[float] = []
            elapsed = 0.0
            for index in range(self.frame_count):
                self._seek(image, index, load=image.format == "WEBP")  # WebP knows durations once decoded
                self.starts.append(elapsed)
                elapsed += _frame_seconds(image)
                limits.check_duration(elapsed)
                limits.check_time(elapsed, elapsed)
        self.duration_s = elapsed

    def _open(self) -> Image.Image:
        with decoding("image"):
            image = Image.open(io.BytesIO(self.data))
            check_pixels(*image.size, self.limits.max_pixels)
        return image

    @staticmethod
    def _what(image: Image.Image) -> str:
        return f"{(image.format or 'multi-frame').lower()} image"

    def _seek(self, image: Image.Image, index: int, *, load: bool) -> None:
        image.seek(index)
        check_pixels(*image.size, self.limits.max_pixels, what=f"frame {index}")
        if load:
            image.load()
            self.decoded += 1

    def frames(self) -> Iterator[SampledFrame]:
        """Every frame, or (past VIDEO_MAX_FRAMES) the one on screen at each of as many sampled instants."""
        with self._open() as image, decoding(self._what(image)):
            for index in self.chosen():
                self._seek(image, index, load=True)
                self.limits.check_time(self.starts[index], self.duration_s)
                region = model_image(image, self.limits.preprocess, self.orientation)
                yield SampledFrame(self.starts[index], region)

    def chosen(self) -> list[int]:
        """Indexes of the frames to judge, in order."""
        count = self.limits.max_frames
        if self.frame_count <= count:
            return list(range(self.frame_count))
        instants = jittered_times(self.duration_s, self.duration_s / count, count, self.seed)
        return sorted({bisect_right(self.starts, t + EPSILON_S) - 1 for t in instants})


def _frame_seconds(image: Image.Image) -> float:
    duration = image.info.get("duration")
    ms = float(duration) if isinstance(duration, int | float) else 0.0
    return (ms if ms > _FASTEST_FRAME_MS else _DEFAULT_FRAME_MS) / 1000
