"""The CLIP towers: load a checkpoint once, embed images and texts (L2-normalised)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from handler.exceptions import ConfigurationError
from handler.preprocess import PreprocessConfig, to_pixel_values
from handler.settings import Settings

logger = logging.getLogger(__name__)

#: Files inference needs from a checkpoint (weights, config, processor and tokenizer).
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


@dataclass
class ClipEncoder:
    """A loaded CLIP checkpoint. Thread-safe for inference; text calls are counted for the cache tests."""

    model: Any  # transformers.CLIPModel
    tokenizer: Any  # transformers.CLIPTokenizerFast
    preprocess: PreprocessConfig
    model_id: str
    model_dir: Path
    text_calls: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.logit_scale = float(self.model.logit_scale.exp().item())
        self.max_text_length = int(self.model.config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised pixels -> (N, D) unit image embeddings. Only the image tower runs."""
        features = self.model.get_image_features(pixel_values=pixel_values)
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.encode_pixels(to_pixel_values(images, self.preprocess))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (N, D) unit text embeddings. Callers go through the text-embedding cache."""
        with self._lock:
            self.text_calls += 1
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_text_length, return_tensors="pt"
        )
        features = self.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
        return torch.nn.functional.normalize(features.float(), dim=-1)


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

        return Path(
            snapshot_download(settings.model_id, allow_patterns=[*CHECKPOINT_FILES, "*.json", "*.txt"])
        )
    except Exception as exc:  # any hub/network/cache failure ends in the same instruction
        raise ConfigurationError(
            f"Cannot load the CLIP model: MODEL_DIR is not set and MODEL_ID={settings.model_id!r} could not "
            f"be downloaded ({type(exc).__name__}); set MODEL_DIR to a local checkpoint directory."
        ) from exc


def load_encoder(settings: Settings) -> ClipEncoder:
    """Load the checkpoint once (weights via safetensors, no hub call) and put it in eval mode."""
    model_dir = resolve_model_dir(settings)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    from transformers import CLIPModel, CLIPTokenizerFast

    try:
        model = CLIPModel.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
        tokenizer = CLIPTokenizerFast.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"The checkpoint in {model_dir} could not be loaded ({exc}); set MODEL_DIR to a complete "
            "CLIP checkpoint (weights, config, tokenizer and preprocessor files)."
        ) from exc
    model.eval()
    model_id = settings.model_id if settings.model_dir is None else _model_id_of(model_dir, settings)
    logger.info("loaded CLIP checkpoint %s from %s", model_id, model_dir)
    return ClipEncoder(
        model=model,
        tokenizer=tokenizer,
        preprocess=PreprocessConfig.from_model_dir(model_dir),
        model_id=model_id,
        model_dir=model_dir,
    )


def _model_id_of(model_dir: Path, settings: Settings) -> str:
    """A baked checkpoint records where it came from; otherwise name it by its directory."""
    marker = model_dir / "MODEL_ID"
    return marker.read_text().strip() if marker.is_file() else str(model_dir)
