"""CLIP image preprocessing without transformers, in memory bounded by the model's input size.

Reads the checkpoint's `preprocessor_config.json` so the numbers always match the model it serves.
Equivalent to `CLIPImageProcessor` (tested against it): scale the short side to `shortest_edge`, crop the
centre, normalise, straight to one numpy batch. It never builds the scaled image: `model_image`
resamples only the source region the crop needs, a band of rows at a time, converting each band to RGB
(16-bit tones scaled, alpha composited on white) on the way. So a 20000x1 strip or a 6000x6000 RGBA
image costs the decoded image plus a few small buffers, never a scaled copy of the whole thing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

#: Pixels converted to RGB at once (one band of rows of the source region).
BAND_PIXELS = 1 << 20
#: Images up to this many pixels, whose scaled copy is at most EXACT_SCALED_AREAS regions, are converted
#: and scaled whole (Pillow's exact path); beyond either, in bands.
EXACT_PIXELS = 4 << 20
EXACT_SCALED_AREAS = 16
_WHITE = (255, 255, 255, 255)
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
#: EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose does).
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset(
    {
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_270,
    }
)
#: Pillow's filter support radius per resampling filter (NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING).
_FILTER_SUPPORT = {0: 0.0, 1: 3.0, 2: 1.0, 3: 2.0, 4: 0.5, 5: 1.0}

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PreprocessConfig:
    shortest_edge: int = 224
    crop_height: int = 224
    crop_width: int = 224
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resample: int = Image.Resampling.BICUBIC

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> PreprocessConfig:
        path = model_dir / "preprocessor_config.json"
        if not path.is_file():
            return cls()
        raw = json.loads(path.read_text())
        size = raw.get("size", {})
        shortest = (
            (size.get("shortest_edge") or size.get("height") or 224) if isinstance(size, dict) else int(size)
        )
        crop = raw.get("crop_size", {"height": shortest, "width": shortest})
        if not isinstance(crop, dict):
            crop = {"height": int(crop), "width": int(crop)}
        return cls(
            shortest_edge=int(shortest),
            crop_height=int(crop["height"]),
            crop_width=int(crop["width"]),
            mean=tuple(raw.get("image_mean", cls.mean)),
            std=tuple(raw.get("image_std", cls.std)),
            resample=int(raw.get("resample", Image.Resampling.BICUBIC)),
        )

    @property
    def draft_size(self) -> tuple[int, int]:
        """The smallest decode size that still covers the resize target (for JPEG draft mode)."""
        return (self.shortest_edge, self.shortest_edge)

    @cached_property
    def normalise_table(self) -> np.ndarray:
        """(3, 256) float32: each channel's normalised value of each 8-bit level, computed as
        `(level - 255 * mean) / (255 * std)` in float32: looking a pixel up gives the same bits as doing
        the arithmetic on it, at a third of the time."""
        levels = np.arange(256, dtype=np.float32)
        scale = np.array([255.0 * s for s in self.std], dtype=np.float32).reshape(3, 1)
        shift = np.array([255.0 * m for m in self.mean], dtype=np.float32).reshape(3, 1)
        table: np.ndarray = (levels[None, :] - shift) / scale
        return table

    @property
    def region(self) -> tuple[int, int]:
        """The most `model_image` returns: the crop, or the scaled short side where that is larger."""
        return (max(self.shortest_edge, self.crop_width), max(self.shortest_edge, self.crop_height))


def model_image(image: Image.Image, cfg: PreprocessConfig, orientation: int = 1) -> Image.Image:
    """Any decoded image -> the RGB region of it the model sees, at most `cfg.region` pixels.

    The result is the centre of the image scaled so its short side is `shortest_edge`, cut to at most
    `cfg.region` (224x224 for CLIP): what `to_pixel_values` crops from. Feeding it back in returns it
    unchanged, so callers may keep only these small images between decoding and the forward pass.
    `orientation` is the EXIF orientation (1-8) to show the picture upright.

    Ordinary images (at most EXACT_PIXELS, aspect ratio within reason) take Pillow's own path, scale
    then crop, bit for bit what the model always saw. Larger or extreme ones are resampled in bands
    (`_resample`): the same filter, rounding in a different order (a level or two on natural images).
    """
    transpose = ORIENTATION_TRANSPOSE.get(orientation)
    width, height = image.size
    swapped = transpose in _SWAPS_AXES
    shown_w, shown_h = (height, width) if swapped else (width, height)
    scaled, left, top, out_w, out_h = _region(shown_w, shown_h, cfg)
    if (out_w, out_h) == (shown_w, shown_h) and image.mode == "RGB" and transpose is None:
        return image  # already a region
    region_w, region_h = cfg.region
    if width * height <= EXACT_PIXELS and scaled[0] * scaled[1] <= EXACT_SCALED_AREAS * region_w * region_h:
        rgb = _to_rgb(image, _tone_scale(image))
        if transpose is not None:
            rgb = rgb.transpose(transpose)
        return _scale_then_crop(rgb, scaled, (left, top, left + out_w, top + out_h), cfg.resample)
    scale_x, scale_y = shown_w / scaled[0], shown_h / scaled[1]
    box = (left * scale_x, top * scale_y, (left + out_w) * scale_x, (top + out_h) * scale_y)
    if swapped:
        out_w, out_h = out_h, out_w
    rgb = _resample(image, _unrotate(box, transpose, width, height), (out_w, out_h), cfg.resample)
    return rgb.transpose(transpose) if transpose is not None else rgb


def _scale_then_crop(image: Image.Image, size: tuple[int, int], box: Box, resample: int) -> Image.Image:
    """`image.resize(size, resample).crop(box)` bit for bit, without resampling what the crop drops.

    Pillow resamples in two passes, rounding to 8 bits in between: a horizontal one, in which each row
    of the output depends on that source row alone, and a vertical one, in which each column depends on
    that column alone. So the second pass runs only on the rows or columns the crop keeps (a quarter
    fewer columns for a 4:3 picture). The passes go in Pillow's order (`_horizontal_first`); the tests
    hold the result to Pillow's own, so a Pillow that changes its order fails them rather than the
    model's inputs. (Running each pass on two threads was tried and dropped: faster only back to back,
    slower after an idle pause and in batches, docs/performance.md.)
    """
    width, height = image.size
    new_w, new_h = size
    left, top, right, bottom = (int(edge) for edge in box)

    def across(picture: Image.Image) -> Image.Image:
        return picture if new_w == width else picture.resize((new_w, picture.height), resample)

    def down(picture: Image.Image) -> Image.Image:
        return picture if new_h == height else picture.resize((picture.width, new_h), resample)

    if _horizontal_first(image.size, size):
        columns = across(image).crop((left, 0, right, height))
        return down(columns).crop((0, top, right - left, bottom))
    rows = down(image).crop((0, top, width, bottom))
    return across(rows).crop((left, 0, right, bottom - top))


def _horizontal_first(source: tuple[int, int], size: tuple[int, int]) -> bool:
    """Pillow 13's order of passes (Resample.c, `ImagingResampleInner`): vertical first only when the
    height shrinks by more than twice as many pixels as the width."""
    shrink_h = source[1] - size[1]
    return not (shrink_h > 0 and shrink_h > 2 * (source[0] - size[0]))


def _region(width: int, height: int, cfg: PreprocessConfig) -> tuple[tuple[int, int], int, int, int, int]:
    """The scaled size of an upright image, and the region's place and size in it."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = cfg.shortest_edge, int(cfg.shortest_edge * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    region_w, region_h = cfg.region
    out_w, out_h = min(new_w, region_w), min(new_h, region_h)
    # Placed so that to_pixel_values' centre crop of the region is the centre crop of the scaled image.
    left = (new_w - cfg.crop_width) // 2 - (out_w - cfg.crop_width) // 2
    top = (new_h - cfg.crop_height) // 2 - (out_h - cfg.crop_height) // 2
    return (new_w, new_h), left, top, out_w, out_h


def _unrotate(box: Box, transpose: Image.Transpose | None, width: int, height: int) -> Box:
    """A box in the upright picture -> the same pixels' box in the stored image of `width` x `height`."""
    left, top, right, bottom = box
    T = Image.Transpose
    if transpose is None:
        return box
    return {
        T.FLIP_LEFT_RIGHT: (width - right, top, width - left, bottom),
        T.FLIP_TOP_BOTTOM: (left, height - bottom, right, height - top),
        T.ROTATE_180: (width - right, height - bottom, width - left, height - top),
        T.TRANSPOSE: (top, left, bottom, right),
        T.ROTATE_90: (width - bottom, left, width - top, right),
        T.ROTATE_270: (top, height - right, bottom, height - left),
        T.TRANSVERSE: (width - bottom, height - right, width - top, height - left),
    }[transpose]


def _resample(image: Image.Image, box: Box, size: tuple[int, int], resample: int) -> Image.Image:
    """`image.convert("RGB").resize(size, box=box)`, without converting or scaling more than the box.

    Pillow resamples in two passes, horizontal then vertical, rounding to 8 bits in between; this does
    the same, the horizontal pass one band of source rows at a time (each band converted to RGB first),
    so the only full-height buffer is `size[0]` pixels wide.
    """
    left, top, right, bottom = box
    out_w, out_h = size
    margin_x = _FILTER_SUPPORT[resample] * max((right - left) / out_w, 1.0) + 2
    margin_y = _FILTER_SUPPORT[resample] * max((bottom - top) / out_h, 1.0) + 2
    x0, x1 = max(0, math.floor(left - margin_x)), min(image.width, math.ceil(right + margin_x))
    y0, y1 = max(0, math.floor(top - margin_y)), min(image.height, math.ceil(bottom + margin_y))
    tone = _tone_scale(image)
    rows_per_band = max(1, BAND_PIXELS // (x1 - x0))
    columns = Image.new("RGB", (out_w, y1 - y0))
    for band_top in range(y0, y1, rows_per_band):
        band_bottom = min(y1, band_top + rows_per_band)
        band = _to_rgb(image.crop((x0, band_top, x1, band_bottom)), tone)
        rows = band_bottom - band_top
        columns.paste(
            band.resize((out_w, rows), resample, box=(left - x0, 0, right - x0, rows)), (0, band_top - y0)
        )
    return columns.resize(size, resample, box=(0, top - y0, out_w, bottom - y0))


def _tone_scale(image: Image.Image) -> float:
    """For 16-bit and float images, the value that becomes 255 (from the whole image, not one band)."""
    if image.mode not in _HIGH_DEPTH_MODES:
        return 255.0
    extrema = image.getextrema()
    top = float(extrema[1]) if isinstance(extrema[1], int | float) else 0.0
    return 255.0 if top <= 255.0 else 65535.0 if top <= 65535.0 else top


def _to_rgb(image: Image.Image, tone: float = 255.0) -> Image.Image:
    """One band as RGB: tones scaled to 8 bits (never clipped), transparency composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_DEPTH_MODES:
        array = np.asarray(image).astype(np.float64) * (255.0 / tone)
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return image.convert("RGB")


def to_pixel_values(images: Sequence[Image.Image], cfg: PreprocessConfig) -> np.ndarray:
    """Images (any mode; `model_image` results pass through unscaled) -> a normalised float32 batch of
    shape (N, 3, H, W)."""
    batch = np.empty((len(images), cfg.crop_height, cfg.crop_width, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        batch[i] = np.asarray(_centre_crop(model_image(image, cfg), cfg))
    pixels = np.empty((len(images), 3, cfg.crop_height, cfg.crop_width), dtype=np.float32)
    for channel, table in enumerate(cfg.normalise_table):
        np.take(table, batch[..., channel], out=pixels[:, channel], mode="clip")  # uint8: never clipped
    return pixels


def _centre_crop(image: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    width, height = image.size
    top = (height - cfg.crop_height) // 2
    left = (width - cfg.crop_width) // 2
    if top < 0 or left < 0:  # narrower than the crop: pad like transformers does, with zeros
        canvas = Image.new("RGB", (max(width, cfg.crop_width), max(height, cfg.crop_height)))
        canvas.paste(image, (max(-left, 0), max(-top, 0)))
        image, top, left = canvas, max(top, 0), max(left, 0)
    if (left, top, image.width, image.height) == (0, 0, cfg.crop_width, cfg.crop_height):
        return image
    return image.crop((left, top, left + cfg.crop_width, top + cfg.crop_height))
