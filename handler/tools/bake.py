"""`python -m handler bake`: prepare a model directory at image build time, so run time needs no torch.

Steps: fetch the checkpoint (or read a local one, in any form transformers loads), export the towers to
ONNX (image fp32, int8 with 8-bit and with 7-bit weights, text fp32), check the fp32 export against
transformers (or refuse to bake), check each int8 tower against fp32 on real photographs (the gate: one
is used only if it passes; which one a CPU gets: `handler.core.model.choose_precision`), precompute the
text embeddings of the default policy and classes, and record the backbone fingerprint. The output holds
no torch weights: configs, tokenizer, the ONNX files and `onnx/manifest.json` with every figure.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from handler.core.checkpoint import SIDE_FILES, download, has_tokenizer, require_weights
from handler.core.cpu import available_cpus, int8_products_exact
from handler.core.fingerprint import compute_fingerprint, write_fingerprint
from handler.core.model import TEXT_LENGTH, ClipEncoder, Precision, load_encoder
from handler.core.onnx_runtime import (
    EXPORT_DIR,
    IMAGE_TOWERS,
    INT8_TOWERS,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    TEXT_FP32,
    load_image_tower,
)
from handler.core.policy import default_policy
from handler.core.text_embeddings import save_text_embeddings
from handler.exceptions import ConfigurationError
from handler.settings import Settings
from handler.tools.int8_gate import Gate, check_int8, photographs_in, skimage_photographs

REQUIRED_FILES = ("config.json", "preprocessor_config.json")
DEFAULT_CLASSES = ("nsfw", "sfw")  # the thesis API's default label set
PARITY_ATOL = 1e-4


def _note(passed: dict[str, bool]) -> str:
    """What INFERENCE_PRECISION=auto will serve, on each kind of CPU."""
    exact = "int8" if passed["int8"] else "int8-w7" if passed["int8-w7"] else "fp32"
    clipping = "int8-w7" if passed["int8-w7"] else "fp32"
    missed = [tower for tower, ok in passed.items() if not ok]
    left_out = ""
    if len(missed) == 1:
        left_out = f"{missed[0]} missed its gate and was left out. "
    elif missed:
        left_out = f"{' and '.join(missed)} missed their gates and were left out. "
    return (
        f"{left_out}INFERENCE_PRECISION=auto serves {exact} on CPUs with VNNI or AMX and on Arm, "
        f"{clipping} on x86 without them"
    )


def _file_key(tower: str) -> str:
    """The manifest's name for an image tower's file: image_fp32, image_int8, image_int8_w7."""
    return "image_" + tower.replace("-", "_")


def check_source(source: Path) -> None:
    missing = [name for name in REQUIRED_FILES if not (source / name).is_file()]
    if not has_tokenizer(source):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if missing:
        raise ConfigurationError(f"{source} is not a CLIP checkpoint: missing {', '.join(missing)}")
    require_weights(source)


def copy_side_files(source: Path, out: Path, model_id: str) -> None:
    """Config, preprocessor and tokenizer files (whichever form the source has); never weights."""
    out.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)
    (out / "MODEL_ID").write_text(model_id + "\n")


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    (out / EXPORT_DIR / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def check_fp32_parity(reference: ClipEncoder, exported: ClipEncoder) -> dict[str, float]:
    """The fp32 ONNX towers must give the transformers embeddings; returns the worst differences."""
    side_h, side_w = reference.preprocess.crop_height, reference.preprocess.crop_width
    pixels = np.random.default_rng(0).standard_normal((3, 3, side_h, side_w)).astype(np.float32)
    texts = ["a photo of a cat", "an explicit photo", "x"]
    image_diff = float(np.abs(exported.encode_pixels(pixels) - reference.encode_pixels(pixels)).max())
    text_diff = float(np.abs(exported.encode_texts(texts) - reference.encode_texts(texts)).max())
    scale_diff = abs(exported.logit_scale - reference.logit_scale)
    if max(image_diff, text_diff) > PARITY_ATOL or scale_diff > 1e-4:
        raise RuntimeError(
            f"the ONNX export differs from transformers (image {image_diff:.2e}, text {text_diff:.2e}, "
            f"logit scale {scale_diff:.2e}); not baking a model that answers differently"
        )
    return {"image_max_abs_diff": image_diff, "text_max_abs_diff": text_diff}


def precompute_text_embeddings(out: Path, encoder: ClipEncoder) -> int:
    """Embeddings of the built-in policy's prompts and the default classes, saved beside the weights."""
    policy = default_policy()
    groups = [tuple(p for c in policy.categories for p in c.prompts), DEFAULT_CLASSES]
    save_text_embeddings(out, {group: encoder.encode_texts(group) for group in groups})
    return len(groups)


def bake(
    out: Path,
    model_id: str,
    from_dir: Path | None = None,
    gate: Gate | None = None,
    check_images: Path | None = None,
) -> dict[str, Any]:
    gate = gate or Gate()
    if out.exists() and any(out.iterdir()):
        raise ConfigurationError(f"{out} is not empty; bake into a new directory")
    source = from_dir if from_dir is not None else download(model_id)
    check_source(source)
    photos = photographs_in(check_images) if check_images else skimage_photographs()  # fail before work
    reference = load_encoder(
        Settings(model_dir=source, model_runtime="transformers", inference_precision="fp32")
    )
    copy_side_files(source, out, model_id)

    from handler.tools.export_onnx import IMAGE_GRAPH_REVISION, export_towers, quantize_image_tower

    image_module, text_module = reference.image_tower.module, reference.load_text_tower().module  # type: ignore[attr-defined]
    folder = export_towers(image_module, text_module, out, reference.preprocess.crop_height, TEXT_LENGTH)
    for tower in INT8_TOWERS:
        quantize_image_tower(folder, tower)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "model_id": model_id,
        "logit_scale": reference.logit_scale,
        "text_length": TEXT_LENGTH,
        "image_side": reference.preprocess.crop_height,
        "files": {_file_key(tower): file for tower, file in IMAGE_TOWERS.items()} | {"text_fp32": TEXT_FP32},
        "exported_with": {p: version(p) for p in ("torch", "transformers", "onnx", "onnxruntime")},
        "image_graph_revision": IMAGE_GRAPH_REVISION,
        # False: this CPU's int8 kernels clip pairs of products, so the 8-bit tower's gate figures below
        # include that clipping (worse than a VNNI/AMX/Arm CPU, where it is served, computes).
        "int8_products_exact_on_bake_cpu": int8_products_exact(),
        **{tower: {"passed": False} for tower in INT8_TOWERS},
    }
    write_manifest(out, manifest)
    exported = load_encoder(Settings(model_dir=out, model_runtime="onnx", inference_precision="fp32"))
    manifest["parity_fp32"] = check_fp32_parity(reference, exported)

    policy = default_policy()
    prompts = [tuple(c.prompts) for c in policy.categories]
    policy_embeddings = np.stack([reference.encode_texts(group).mean(axis=0) for group in prompts])
    policy_embeddings /= np.linalg.norm(policy_embeddings, axis=-1, keepdims=True)
    source_name = str(check_images) if check_images else "scikit-image photographs (mirrored, cropped)"
    for tower in INT8_TOWERS:
        int8 = dataclasses.replace(
            exported,
            image_tower=load_image_tower(out, tower, threads=available_cpus()),
            precision=Precision(tower),
        )
        result = check_int8(
            reference, int8, photos, DEFAULT_CLASSES, policy, policy_embeddings, gate, source_name
        )
        manifest[tower] = result.as_dict()
        if not result.passed:  # not used: leave it out of the image
            (folder / IMAGE_TOWERS[tower]).unlink()
            manifest["files"].pop(_file_key(tower))
    write_manifest(out, manifest)
    passed = {tower: bool(manifest[tower]["passed"]) for tower in INT8_TOWERS}

    groups = precompute_text_embeddings(out, exported)
    fingerprint = write_fingerprint(out, compute_fingerprint(source))  # the source's weights, any form
    return {
        "model_id": model_id,
        "out": str(out),
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
        "parity_fp32": manifest["parity_fp32"],
        "int8": manifest["int8"],
        "int8-w7": manifest["int8-w7"],
        "int8_used_by_auto": passed["int8"],
        "int8_w7_used_by_auto": passed["int8-w7"],
        "note": _note(passed),
        "text_embedding_groups": groups,
        "backbone_fingerprint": fingerprint,
    }
