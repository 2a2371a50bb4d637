"""`python -m handler bake`: prepare a model directory at image build time, so run time downloads nothing.

Steps: fetch the checkpoint (or copy a local one), keep only what inference needs, trace the towers to
TorchScript, check that the export answers like transformers, and precompute the text embeddings of the
default policy and the default classes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from handler.core.fingerprint import write_fingerprint
from handler.core.model import CHECKPOINT_FILES, TEXT_LENGTH, ClipEncoder, load_encoder
from handler.core.text_embeddings import save_text_embeddings
from handler.core.towers import export_towers
from handler.exceptions import ConfigurationError
from handler.settings import Settings

REQUIRED_FILES = ("config.json", "preprocessor_config.json", "tokenizer.json")
DEFAULT_CLASSES = ("nsfw", "sfw")  # the thesis API's default label set
PARITY_ATOL = 1e-4


def download(model_id: str) -> Path:
    """The checkpoint's inference files from the hub (build time only): safetensors if published."""
    from huggingface_hub import list_repo_files, snapshot_download

    published = set(list_repo_files(model_id))
    weights = "model.safetensors" if "model.safetensors" in published else "pytorch_model.bin"
    return Path(snapshot_download(model_id, allow_patterns=[*CHECKPOINT_FILES, weights]))


def copy_checkpoint(source: Path, out: Path, model_id: str) -> None:
    """Copy inference files only; weights end up as safetensors whatever format the source used."""
    missing = [name for name in REQUIRED_FILES if not (source / name).is_file()]
    if missing:
        raise ConfigurationError(f"{source} is not a CLIP checkpoint: missing {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        if (source / name).is_file() and name != "model.safetensors":
            shutil.copyfile(source / name, out / name)
    if (source / "model.safetensors").is_file():
        shutil.copyfile(source / "model.safetensors", out / "model.safetensors")
    elif (source / "pytorch_model.bin").is_file():
        from transformers import CLIPModel

        CLIPModel.from_pretrained(source, local_files_only=True).save_pretrained(out, safe_serialization=True)
        (out / "config.json").write_text((source / "config.json").read_text())
    else:
        raise ConfigurationError(f"{source} has no weights (model.safetensors or pytorch_model.bin)")
    (out / "MODEL_ID").write_text(model_id + "\n")


def check_export_parity(out: Path, exported: ClipEncoder) -> dict[str, float]:
    """The TorchScript towers must give the transformers embeddings; returns the worst differences."""
    reference = load_encoder(Settings(model_dir=out, model_runtime="transformers"))
    generator = torch.Generator().manual_seed(0)
    side = exported.preprocess.crop_height
    pixels = torch.randn(3, 3, side, exported.preprocess.crop_width, generator=generator)
    texts = ["a photo of a cat", "an explicit photo", "x"]
    expected = reference.encode_pixels(pixels)
    image_diff = float((exported.encode_pixels(pixels) - expected).abs().max())
    text_diff = float((exported.encode_texts(texts) - reference.encode_texts(texts)).abs().max())
    scale_diff = abs(exported.logit_scale - reference.logit_scale)
    bf16 = load_encoder(Settings(model_dir=out, model_runtime="torchscript", inference_precision="bf16"))
    bf16_cosine = float((bf16.encode_pixels(pixels) * expected).sum(-1).min())
    if max(image_diff, text_diff) > PARITY_ATOL or scale_diff > 1e-4:
        raise RuntimeError(
            f"the TorchScript export differs from transformers (image {image_diff:.2e}, "
            f"text {text_diff:.2e}, logit scale {scale_diff:.2e}); "
            "not baking a model that answers differently"
        )
    return {"image_max_abs_diff": image_diff, "text_max_abs_diff": text_diff, "bf16_cosine_min": bf16_cosine}


def precompute_text_embeddings(out: Path, encoder: ClipEncoder) -> int:
    """Embeddings of the built-in policy's prompts and the default classes, saved beside the weights."""
    from handler.core.policy import default_policy

    policy = default_policy()
    groups = [tuple(p for c in policy.categories for p in c.prompts), DEFAULT_CLASSES]
    save_text_embeddings(out, {group: encoder.encode_texts(group) for group in groups})
    return len(groups)


def bake(out: Path, model_id: str, from_dir: Path | None = None) -> dict[str, object]:
    source = from_dir if from_dir is not None else download(model_id)
    if out.exists() and any(out.iterdir()):
        raise ConfigurationError(f"{out} is not empty; bake into a new directory")
    copy_checkpoint(source, out, model_id)
    export_towers(out, TEXT_LENGTH)
    exported = load_encoder(Settings(model_dir=out, model_runtime="torchscript"))
    parity = check_export_parity(out, exported)
    groups = precompute_text_embeddings(out, exported)
    fingerprint = write_fingerprint(out)  # trained heads check it; no hashing of weights at a cold start
    summary: dict[str, object] = {
        "model_id": model_id,
        "out": str(out),
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
        "parity": parity,
        "text_embedding_groups": groups,
        "backbone_fingerprint": fingerprint,
    }
    return summary
