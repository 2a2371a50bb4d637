"""Untrusted bytes sniffed once into a media value: a still, a multi-frame image, or a video.

A still is decoded at once to the model-sized region (`handler.core.preprocess.model_image`), so only
that small image is kept between download and the forward pass; a multi-frame image keeps its bytes
(its frames are decoded one at a time when judged); a video stays in its (temporary) file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from handler.core.preprocess import PreprocessConfig, model_image
from handler.exceptions import InputError
from handler.inputs.images import ImageLimits, check_size, decoding, format_name, open_image, orientation
from handler.video.formats import VIDEO_SNIFF_BYTES, sniff_video_format


@dataclass(frozen=True)
class Still:
    """One picture, already cut to the region the model sees (at most 224x224 for CLIP)."""

    image: Image.Image
    format: str


@dataclass(frozen=True)
class MultiFrame:
    """An image with several frames or pages (GIF, WebP, APNG, TIFF, MPO): every frame is judged."""

    data: bytes
    format: str
    frame_count: int


@dataclass(frozen=True)
class Video:
    """A video container in a file (PyAV reads seekable files); the caller owns the file."""

    path: Path
    format: str


Media = Still | MultiFrame | Video


def image_media(data: bytes, limits: ImageLimits, preprocess: PreprocessConfig) -> Still | MultiFrame:
    """Bytes that must be an image: a Still (decoded to the model's region) or a MultiFrame.

    InputError (4xx) for anything else, naming the format when it is known (a video says where to go).
    """
    video = sniff_video_format(data[:VIDEO_SNIFF_BYTES])
    if video is not None:
        raise InputError(f"this is a {video} video, not an image: send it to POST /v1/moderate/video", 415)
    with decoding(lambda: format_name(None, data)):
        image = open_image(data, limits)
    with decoding(lambda: format_name(image, data)), image:
        name = (image.format or "image").lower()
        frames = int(getattr(image, "n_frames", 1))
        if frames > 1:
            return MultiFrame(data, name, frames)
        if image.format == "JPEG":
            image.draft("RGB", preprocess.draft_size)
        image.load()
        return Still(model_image(image, preprocess, orientation(image)), name)


def file_media(path: Path, limits: ImageLimits, preprocess: PreprocessConfig) -> Media:
    """A file of any kind: a Video when its first bytes name a container, else `image_media` of it."""
    with path.open("rb") as file:
        head = file.read(VIDEO_SNIFF_BYTES)
    video = sniff_video_format(head)
    if video is not None:
        return Video(path, video)
    if not head:
        raise InputError("the file is empty (0 bytes)")
    check_size(path.stat().st_size, limits.max_bytes)
    return image_media(path.read_bytes(), limits, preprocess)
