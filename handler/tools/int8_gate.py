"""The int8 gate: the quantised image tower is used only if it answers like fp32 on real photographs.

The photographs are the ones scikit-image ships inside its wheel (astronaut, cat, coffee, rocket, ...;
no download), each also mirrored and cropped, or a directory of the user's own (`bake --check-images`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from handler.core.model import ClipEncoder
from handler.core.policy import Policy
from handler.core.scoring import judge, probabilities
from handler.exceptions import ConfigurationError

#: Photographs in scikit-image's data folder (its synthetic, binary and scanned-text images left out).
PHOTOGRAPHS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "ihc.png",
    "camera.png",
    "coins.png",
    "moon.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "page.png",
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Gate:
    """Bounds the int8 image tower must meet against fp32 on every check image (cosine) and overall."""

    min_cosine: float = 0.97
    min_verdict_agreement: float = 0.95


@dataclass(frozen=True)
class GateResult:
    passed: bool
    images: int
    source: str
    cosine_min: float
    cosine_mean: float
    top1_agreement: float
    verdict_agreement: float
    gate: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def skimage_photographs() -> list[Image.Image]:
    """scikit-image's photographs, each as itself, mirrored, and its left and right square crops."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the int8 check needs scikit-image's photographs: pip install -r requirements-build.txt, "
            "or pass --check-images DIR"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    photos = [_rgb(Image.open(folder / name)) for name in PHOTOGRAPHS if (folder / name).is_file()]
    return [variant for photo in photos for variant in _variants(photo)]


def photographs_in(folder: Path) -> list[Image.Image]:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigurationError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [_rgb(Image.open(p)) for p in paths]


def _rgb(image: Image.Image) -> Image.Image:
    image.load()
    return image.convert("RGB")


def _variants(photo: Image.Image) -> list[Image.Image]:
    width, height = photo.size
    side = min(width, height)
    return [
        photo,
        ImageOps.mirror(photo),
        photo.crop((0, 0, side, side)),
        photo.crop((width - side, height - side, width, height)),
    ]


def check_int8(
    reference: ClipEncoder,
    int8: ClipEncoder,
    images: Sequence[Image.Image],
    labels: Sequence[str],
    policy: Policy,
    policy_embeddings: np.ndarray,
    gate: Gate,
    source: str,
) -> GateResult:
    """Compare int8 with the fp32 reference: per-image cosine, top-1 over `labels`, `policy` verdicts."""
    ref = np.concatenate([reference.encode_images(images[i : i + 16]) for i in range(0, len(images), 16)])
    fast = np.concatenate([int8.encode_images(images[i : i + 16]) for i in range(0, len(images), 16)])
    cosines = (ref * fast).sum(axis=-1)
    label_embeddings = reference.encode_texts(labels)
    ref_top = probabilities(ref, label_embeddings, reference.logit_scale).argmax(-1)
    fast_top = probabilities(fast, label_embeddings, reference.logit_scale).argmax(-1)
    ref_p = probabilities(ref, policy_embeddings, reference.logit_scale)
    fast_p = probabilities(fast, policy_embeddings, reference.logit_scale)
    verdicts = [
        judge(policy, a).verdict == judge(policy, b).verdict for a, b in zip(ref_p, fast_p, strict=True)
    ]
    result = {
        "cosine_min": float(cosines.min()),
        "cosine_mean": float(cosines.mean()),
        "top1_agreement": float((ref_top == fast_top).mean()),
        "verdict_agreement": sum(verdicts) / len(verdicts),
    }
    passed = (
        result["cosine_min"] >= gate.min_cosine and result["verdict_agreement"] >= gate.min_verdict_agreement
    )
    return GateResult(passed=passed, images=len(images), source=source, gate=asdict(gate), **result)
