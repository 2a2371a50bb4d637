"""CLIP's two towers as plain torch modules: built from transformers, or loaded from a TorchScript export.

The model definition stays transformers'. The bake step traces each tower once (`export_towers`), so a
serving process can load them with torch alone and skip importing transformers (about 2 s of cold start).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import torch

EXPORT_DIR = "torchscript"
IMAGE_TOWER_FILE = "image_tower.pt"
IMAGE_TOWER_BF16_FILE = "image_tower_bf16.pt"
TEXT_TOWER_FILE = "text_tower.pt"
MANIFEST_FILE = "manifest.json"


class ImageTower(Protocol):
    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor: ...


class TextTower(Protocol):
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor: ...


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


def load_transformers_towers(model_dir: Path) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """Both towers and the logit scale from a transformers checkpoint (safetensors, offline)."""
    from transformers import CLIPModel

    clip = CLIPModel.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval()
    scale = float(clip.logit_scale.exp().item())
    return TransformersImageTower(clip).eval(), TransformersTextTower(clip).eval(), scale


def export_towers(model_dir: Path, text_length: int) -> Path:
    """Trace both towers into `model_dir/torchscript/` (dynamic batch; text padded to `text_length`)."""
    image_tower, text_tower, scale = load_transformers_towers(model_dir)
    side = _image_side(model_dir)
    out = model_dir / EXPORT_DIR
    out.mkdir(exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings(), _quiet_jit():
        # data-dependent branches in the model code are constant for CLIP: silence the tracer about them
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        pixels = torch.randn(2, 3, side, side)
        ids = torch.ones(2, text_length, dtype=torch.long)
        traced_image = torch.jit.trace(image_tower, pixels, check_trace=False)
        traced_text = torch.jit.trace(text_tower, (ids, torch.ones_like(ids)), check_trace=False)
        # the model casts pixels to its weights' dtype, which tracing freezes: bf16 needs its own trace
        # (a deep copy: traced modules share parameters with the module they were traced from)
        traced_bf16 = torch.jit.trace(
            copy.deepcopy(image_tower).to(torch.bfloat16), pixels, check_trace=False
        )
    with _quiet_jit():
        torch.jit.save(traced_image, str(out / IMAGE_TOWER_FILE))
        torch.jit.save(traced_text, str(out / TEXT_TOWER_FILE))
        torch.jit.save(traced_bf16, str(out / IMAGE_TOWER_BF16_FILE))
    manifest = {
        "logit_scale": scale,
        "text_length": text_length,
        "image_side": side,
        "torch": torch.__version__,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return out


def has_export(model_dir: Path) -> bool:
    out = model_dir / EXPORT_DIR
    return all((out / name).is_file() for name in (IMAGE_TOWER_FILE, TEXT_TOWER_FILE, MANIFEST_FILE))


def export_manifest(model_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((model_dir / EXPORT_DIR / MANIFEST_FILE).read_text())
    return manifest


def load_exported_image_tower(model_dir: Path, bf16: bool = False) -> torch.jit.ScriptModule:
    name = IMAGE_TOWER_BF16_FILE if bf16 else IMAGE_TOWER_FILE
    with _quiet_jit():
        module: torch.jit.ScriptModule = torch.jit.load(str(model_dir / EXPORT_DIR / name))
    return module.eval()


def load_exported_text_tower(model_dir: Path) -> torch.jit.ScriptModule:
    with _quiet_jit():
        module: torch.jit.ScriptModule = torch.jit.load(str(model_dir / EXPORT_DIR / TEXT_TOWER_FILE))
    return module.eval()


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """torch 2.13 deprecates TorchScript for torch.export; the format still loads with torch alone."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        yield


def _image_side(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text())
    return int(config.get("vision_config", {}).get("image_size", 224))
