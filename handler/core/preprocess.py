"""CLIP image preprocessing without transformers: resize, centre-crop, normalise, one copy.

Reads the checkpoint's `preprocessor_config.json` so the numbers always match the model it serves.
Equivalent to `CLIPImageProcessor` (tested against it) but works on PIL images straight to one numpy batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


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


def _resize_and_crop(image: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = cfg.shortest_edge, int(cfg.shortest_edge * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), resample=Image.Resampling(cfg.resample))
    top = (new_h - cfg.crop_height) // 2
    left = (new_w - cfg.crop_width) // 2
    if top < 0 or left < 0:  # narrower than the crop: pad like transformers does, with zeros
        canvas = Image.new("RGB", (max(new_w, cfg.crop_width), max(new_h, cfg.crop_height)))
        canvas.paste(image, (max(-left, 0), max(-top, 0)))
        image, top, left = canvas, max(top, 0), max(left, 0)
    return image.crop((left, top, left + cfg.crop_width, top + cfg.crop_height))


def to_pixel_values(images: Sequence[Image.Image], cfg: PreprocessConfig) -> np.ndarray:
    """RGB PIL images -> a normalised float32 batch of shape (N, 3, H, W)."""
    batch = np.empty((len(images), cfg.crop_height, cfg.crop_width, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        batch[i] = np.asarray(_resize_and_crop(image, cfg))
    scale = np.array([255.0 * s for s in cfg.std], dtype=np.float32).reshape(1, 3, 1, 1)
    shift = np.array([255.0 * m for m in cfg.mean], dtype=np.float32).reshape(1, 3, 1, 1)
    pixels = batch.transpose(0, 3, 1, 2).astype(np.float32)
    pixels -= shift
    pixels /= scale
    return np.ascontiguousarray(pixels)
