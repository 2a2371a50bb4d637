"""The transformers runtime: CLIP's two towers as torch modules, called with numpy and answering numpy.

This is the developer's path (`make serve` on a raw checkpoint) and the reference the bake step checks
its ONNX export against; `export_onnx` exports these same modules. Only this module and the tools import
torch: the moderation core sees numpy arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from handler.core.checkpoint import load_clip_model


class TransformersImageTower(torch.nn.Module):
    """`CLIPModel.get_image_features` without the text tower: vision transformer -> projection."""

    def __init__(self, clip: Any) -> None:
        super().__init__()
        self.vision_model = clip.vision_model
        self.visual_projection = clip.visual_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=pixel_values).pooler_output
        features: torch.Tensor = self.visual_projection(pooled)
        return features


class TransformersTextTower(torch.nn.Module):
    """`CLIPModel.get_text_features`: text transformer -> projection."""

    def __init__(self, clip: Any) -> None:
        super().__init__()
        self.text_model = clip.text_model
        self.text_projection = clip.text_projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        features: torch.Tensor = self.text_projection(pooled)
        return features


def load_torch_towers(model_dir: Path) -> tuple[TransformersImageTower, TransformersTextTower, float]:
    """Both towers (fp32, eval) and the logit scale, from any checkpoint form (handler/core/checkpoint.py)."""
    clip = load_clip_model(model_dir)
    scale = float(clip.logit_scale.exp().item())
    return TransformersImageTower(clip).eval(), TransformersTextTower(clip).eval(), scale


class TorchImageTower:
    """numpy pixels -> numpy features; bf16 casts the weights (the model casts its input to match)."""

    def __init__(self, module: torch.nn.Module, bf16: bool = False) -> None:
        self.module = module.to(torch.bfloat16) if bf16 else module

    @torch.inference_mode()
    def __call__(self, pixel_values: np.ndarray) -> np.ndarray:
        features = self.module(torch.from_numpy(pixel_values))
        result: np.ndarray = features.float().numpy()
        return result


class TorchTextTower:
    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    @torch.inference_mode()
    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        features = self.module(torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        result: np.ndarray = features.float().numpy()
        return result


def load_transformers_runtime(
    model_dir: Path, bf16: bool, threads: int
) -> tuple[TorchImageTower, TorchTextTower, float]:
    torch.set_num_threads(threads)
    image, text, scale = load_torch_towers(model_dir)
    return TorchImageTower(image, bf16), TorchTextTower(text), scale
