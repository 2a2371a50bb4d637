"""The loaded CLIP model behind one seam: numpy pixels and texts in, numpy unit embeddings out.

Two runtimes sit behind it: ONNX Runtime on a baked model directory (the Lambda image, no torch) and
transformers on a raw checkpoint (the developer's path). Nothing above this module imports torch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from handler.core.checkpoint import download, has_tokenizer
from handler.core.cpu import available_cpus, cpu_has_native_bf16, int8_products_exact
from handler.core.onnx_runtime import has_onnx_export, int8_usable, read_manifest
from handler.core.preprocess import PreprocessConfig, to_pixel_values
from handler.core.tokenizer import ClipTokenizer
from handler.core.vectors import unit
from handler.exceptions import ConfigurationError
from handler.settings import Settings

logger = logging.getLogger(__name__)

TEXT_LENGTH = 77


class ImageTower(Protocol):
    def __call__(self, pixel_values: np.ndarray) -> np.ndarray: ...


class TextTower(Protocol):
    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


class Runtime(StrEnum):
    auto = "auto"  # ONNX Runtime when the directory was baked, else transformers
    onnx = "onnx"
    transformers = "transformers"


class Precision(StrEnum):
    auto = "auto"  # int8 when the bake's int8 gate passed, else fp32
    fp32 = "fp32"
    int8 = "int8"  # ONNX Runtime, dynamically quantised image tower (a baked model directory)
    int8_w7 = "int8-w7"  # the same with 7-bit weights: int8 on CPUs whose int8 kernels clip 8-bit ones
    bf16 = "bf16"  # transformers image tower in bfloat16; needs AVX512-BF16 or AMX

    @property
    def is_int8(self) -> bool:
        return self in (Precision.int8, Precision.int8_w7)


@dataclass
class ClipEncoder:
    """A loaded checkpoint. Thread-safe; the text tower loads on first use and its calls are counted."""

    image_tower: ImageTower
    load_text_tower: Callable[[], TextTower]
    tokenizer: ClipTokenizer
    preprocess: PreprocessConfig
    logit_scale: float
    model_id: str
    model_dir: Path
    runtime: Runtime
    precision: Precision
    text_calls: int = 0
    _text_tower: TextTower | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def encode_pixels(self, pixel_values: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) normalised float32 pixels -> (N, D) unit image embeddings (image tower only)."""
        return unit(self.image_tower(pixel_values))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(to_pixel_values(images, self.preprocess))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, D) unit text embeddings. Callers go through the text-embedding cache."""
        with self._lock:
            self.text_calls += 1
            if self._text_tower is None:
                self._text_tower = self.load_text_tower()
            tower = self._text_tower
        ids, mask = self.tokenizer(texts)
        return unit(tower(ids, mask))


def resolve_model_dir(settings: Settings) -> Path:
    """MODEL_DIR if set, else MODEL_ID from (or into) the Hugging Face cache. Raises one clear sentence."""
    if settings.model_dir is not None:
        path = settings.model_dir
        if not (path / "config.json").is_file():
            raise ConfigurationError(
                f"MODEL_DIR={path} holds no CLIP checkpoint (no config.json there); set MODEL_DIR to a "
                "directory made by `python -m handler bake`, or unset it to download MODEL_ID."
            )
        return path
    try:
        return download(settings.model_id)
    except Exception as exc:  # any hub/network/cache failure ends in the same instruction
        raise ConfigurationError(
            f"Cannot load the CLIP model: MODEL_DIR is not set and MODEL_ID={settings.model_id!r} could not "
            f"be downloaded ({type(exc).__name__}); set MODEL_DIR to a local checkpoint directory."
        ) from exc


def choose_runtime(requested: Runtime, model_dir: Path) -> Runtime:
    baked = has_onnx_export(model_dir)
    if requested is Runtime.auto:
        return Runtime.onnx if baked else Runtime.transformers
    if requested is Runtime.onnx and not baked:
        raise ConfigurationError(
            f"MODEL_RUNTIME=onnx but {model_dir} has no ONNX export; bake it with `python -m handler bake` "
            "or set MODEL_RUNTIME=auto."
        )
    return requested


def choose_precision(requested: Precision, runtime: Runtime, model_dir: Path) -> Precision:
    """The requested precision where this runtime and CPU can run it, else fp32 (logged, never an error).

    int8 (and auto) means the int8 tower made for this CPU: `int8` where its int8 kernels sum products
    exactly, else `int8-w7`, whose 7-bit weights they cannot clip (`int8_products_exact`); where both
    suit the CPU and the 8-bit one missed its gate, the 7-bit one. `int8-w7` asked for by name runs
    anywhere (one tower for a mixed fleet, unclipped on every CPU).
    """
    if runtime is Runtime.onnx:
        return _onnx_precision(requested, model_dir)
    if requested.is_int8:
        logger.warning(
            "INFERENCE_PRECISION=%s needs a baked model (python -m handler bake); using fp32", requested
        )
    if requested is Precision.bf16:
        if cpu_has_native_bf16():
            return Precision.bf16
        logger.warning("INFERENCE_PRECISION=bf16 needs AVX512-BF16 or AMX; this CPU has neither, using fp32")
    return Precision.fp32


def _onnx_precision(requested: Precision, model_dir: Path) -> Precision:
    if requested is Precision.bf16:
        logger.warning("INFERENCE_PRECISION=bf16 runs on the transformers runtime only; using fp32")
    if requested in (Precision.fp32, Precision.bf16):
        return Precision.fp32
    exact = int8_products_exact()
    if requested is Precision.int8_w7:
        candidates = [Precision.int8_w7]
    else:
        candidates = [Precision.int8, Precision.int8_w7] if exact else [Precision.int8_w7]
    manifest = read_manifest(model_dir)
    for candidate in candidates:
        if int8_usable(model_dir, manifest, candidate.value):
            if candidate is Precision.int8_w7 and requested is not Precision.int8_w7:
                logger.info(
                    "int8 image tower with 7-bit weights: %s",
                    "the 8-bit one missed its gate"
                    if exact
                    else "this CPU's int8 kernels (no VNNI or AMX) would clip sums of 8-bit weights",
                )
            return candidate
    if Precision.int8_w7 in candidates and Precision.int8_w7.value not in manifest:  # baked before it existed
        needs = "" if exact else ", the one this CPU needs (no VNNI or AMX: 8-bit weights would be clipped)"
        message = "INFERENCE_PRECISION=%s: the bake made no int8-w7 tower%s; bake again. Using fp32"
        logger.warning(message, requested, needs)
    elif requested is not Precision.auto:
        logger.warning("INFERENCE_PRECISION=%s but its bake gate did not pass; using fp32", requested)
    return Precision.fp32


def load_encoder(settings: Settings) -> ClipEncoder:
    """Load the checkpoint once, through ONNX Runtime when it was baked, else through transformers."""
    model_dir = resolve_model_dir(settings)
    runtime = choose_runtime(Runtime(settings.model_runtime), model_dir)
    precision = choose_precision(Precision(settings.inference_precision), runtime, model_dir)
    threads = settings.inference_threads or available_cpus()
    load_text: Callable[[], TextTower]
    try:
        if not has_tokenizer(model_dir):
            raise ConfigurationError(
                f"{model_dir} has no tokenizer files (tokenizer.json, or vocab.json and merges.txt)"
            )
        tokenizer = ClipTokenizer(model_dir, TEXT_LENGTH)
        if runtime is Runtime.onnx:
            from handler.core import onnx_runtime

            image_tower: ImageTower = onnx_runtime.load_image_tower(model_dir, precision.value, threads)
            scale = float(read_manifest(model_dir)["logit_scale"])

            def load_text() -> TextTower:
                return onnx_runtime.load_text_tower(model_dir, threads)

        else:
            from handler.core.towers import load_transformers_runtime

            image_tower, text_tower, scale = load_transformers_runtime(
                model_dir, precision is Precision.bf16, threads
            )

            def load_text() -> TextTower:
                return text_tower

    except (OSError, ValueError, RuntimeError, ConfigurationError) as exc:
        raise ConfigurationError(
            f"The checkpoint in {model_dir} could not be loaded ({exc}); set MODEL_DIR to a complete "
            "CLIP checkpoint (weights, config, tokenizer and preprocessor files) or a baked model directory."
        ) from exc
    model_id = settings.model_id if settings.model_dir is None else _model_id_of(model_dir)
    logger.info(
        "loaded CLIP %s from %s (runtime=%s, precision=%s, threads=%d)",
        model_id,
        model_dir,
        runtime,
        precision,
        threads,
    )
    return ClipEncoder(
        image_tower=image_tower,
        load_text_tower=load_text,
        tokenizer=tokenizer,
        preprocess=PreprocessConfig.from_model_dir(model_dir),
        logit_scale=scale,
        model_id=model_id,
        model_dir=model_dir,
        runtime=runtime,
        precision=precision,
    )


def _model_id_of(model_dir: Path) -> str:
    """A baked checkpoint records where it came from; otherwise name it by its directory."""
    marker = model_dir / "MODEL_ID"
    return marker.read_text().strip() if marker.is_file() else str(model_dir)
