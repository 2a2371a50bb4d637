"""The loaded CLIP model: image and text towers, tokenizer and preprocessing; unit embeddings out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import torch
from PIL import Image

from handler.core.preprocess import PreprocessConfig, to_pixel_values
from handler.core.tokenizer import ClipTokenizer
from handler.core.towers import (
    ImageTower,
    TextTower,
    export_manifest,
    has_export,
    load_exported_image_tower,
    load_exported_text_tower,
    load_transformers_towers,
)
from handler.exceptions import ConfigurationError
from handler.settings import Settings

logger = logging.getLogger(__name__)

#: Files inference needs from a transformers checkpoint (weights, config, processor and tokenizer).
CHECKPOINT_FILES = (
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)
TEXT_LENGTH = 77


class Runtime(StrEnum):
    auto = "auto"  # the TorchScript export when the checkpoint has one, else transformers
    transformers = "transformers"
    torchscript = "torchscript"


class Precision(StrEnum):
    fp32 = "fp32"
    bf16 = "bf16"  # image tower in bfloat16; needs a CPU with native bf16 (AVX512-BF16 or AMX)


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

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised pixels -> (N, D) unit image embeddings. Only the image tower runs."""
        return torch.nn.functional.normalize(self.image_tower(pixel_values).float(), dim=-1)

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.encode_pixels(to_pixel_values(images, self.preprocess))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (N, D) unit text embeddings. Callers go through the text-embedding cache."""
        with self._lock:
            self.text_calls += 1
            if self._text_tower is None:
                self._text_tower = self.load_text_tower()
            tower = self._text_tower
        ids, mask = self.tokenizer(texts)
        return torch.nn.functional.normalize(tower(ids, mask).float(), dim=-1)


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
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(settings.model_id, allow_patterns=list(CHECKPOINT_FILES)))
    except Exception as exc:  # any hub/network/cache failure ends in the same instruction
        raise ConfigurationError(
            f"Cannot load the CLIP model: MODEL_DIR is not set and MODEL_ID={settings.model_id!r} could not "
            f"be downloaded ({type(exc).__name__}); set MODEL_DIR to a local checkpoint directory."
        ) from exc


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(requested: Precision) -> Precision:
    """The requested precision if this CPU runs it natively, else fp32 (logged, never an error)."""
    if requested is Precision.bf16 and not cpu_has_native_bf16():
        logger.warning("INFERENCE_PRECISION=bf16 needs AVX512-BF16 or AMX; this CPU has neither, using fp32")
        return Precision.fp32
    return requested


def load_encoder(settings: Settings) -> ClipEncoder:
    """Load the checkpoint once: the TorchScript export when present (torch only), else transformers."""
    model_dir = resolve_model_dir(settings)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    runtime = Runtime(settings.model_runtime)
    if runtime is Runtime.auto:
        runtime = Runtime.torchscript if has_export(model_dir) else Runtime.transformers
    precision = choose_precision(Precision(settings.inference_precision))
    try:
        if runtime is Runtime.torchscript:
            if not has_export(model_dir):
                raise ConfigurationError(
                    f"MODEL_RUNTIME=torchscript but {model_dir} has no TorchScript export; "
                    "bake the model with `python -m handler bake` or set MODEL_RUNTIME=auto."
                )
            image_tower: torch.nn.Module = load_exported_image_tower(model_dir, precision is Precision.bf16)
            scale = float(export_manifest(model_dir)["logit_scale"])

            def load_text() -> TextTower:
                return load_exported_text_tower(model_dir)

        else:
            image_tower, text_tower, scale = load_transformers_towers(model_dir)
            if precision is Precision.bf16:  # the model casts its input to the weights' dtype itself
                image_tower = image_tower.to(torch.bfloat16)

            def load_text() -> TextTower:
                return text_tower

        tokenizer = ClipTokenizer(model_dir, TEXT_LENGTH)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigurationError(
            f"The checkpoint in {model_dir} could not be loaded ({exc}); set MODEL_DIR to a complete "
            "CLIP checkpoint (weights, config, tokenizer and preprocessor files)."
        ) from exc
    model_id = settings.model_id if settings.model_dir is None else _model_id_of(model_dir)
    logger.info("loaded CLIP %s from %s (runtime=%s, precision=%s)", model_id, model_dir, runtime, precision)
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
