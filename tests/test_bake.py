"""The bake step: a model directory that loads offline with torch alone and answers like transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from handler.core.model import load_encoder
from handler.core.moderator import build_moderator
from handler.core.policy import default_policy
from handler.core.text_embeddings import load_text_embeddings
from handler.exceptions import ConfigurationError
from handler.settings import Settings
from handler.tools.bake import bake

ROOT = Path(__file__).parents[1]


def test_bake_keeps_only_inference_files(baked: Path) -> None:
    files = sorted(str(p.relative_to(baked)) for p in baked.rglob("*") if p.is_file())
    assert "model.safetensors" in files
    assert not any(name.endswith((".bin", ".h5", ".msgpack", ".onnx")) for name in files)
    assert {"torchscript/image_tower.pt", "torchscript/text_tower.pt", "text_embeddings.safetensors"} <= set(
        files
    )
    assert (baked / "MODEL_ID").read_text().strip() == "test/tiny-clip"


def test_bake_converts_pytorch_bin_weights_to_safetensors(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import CLIPModel

    source = tmp_path / "bin-checkpoint"
    CLIPModel.from_pretrained(tiny_model_dir).save_pretrained(source, safe_serialization=False)
    for name in (
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ):
        (source / name).write_bytes((tiny_model_dir / name).read_bytes())
    assert (source / "pytorch_model.bin").is_file()
    out = tmp_path / "out"
    bake(out, "test/bin", from_dir=source)
    assert (out / "model.safetensors").is_file()
    assert not (out / "pytorch_model.bin").exists()


def test_bake_refuses_a_non_checkpoint_and_a_non_empty_target(tmp_path: Path, baked: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a CLIP checkpoint"):
        bake(tmp_path / "out", "x", from_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="not empty"):
        bake(baked, "x", from_dir=baked)


def test_policy_and_default_class_embeddings_are_precomputed(baked: Path) -> None:
    groups = load_text_embeddings(baked)
    prompts = tuple(p for c in default_policy().categories for p in c.prompts)
    assert set(groups) == {prompts, ("nsfw", "sfw")}
    moderator = build_moderator(Settings(model_dir=baked))
    assert moderator.encoder.text_calls == 0  # start-up computed nothing
    from PIL import Image

    image = Image.new("RGB", (100, 80), (1, 2, 3))
    moderator.moderate([image], moderator.policies.default)
    moderator.classify([image], ["nsfw", "sfw"])
    assert moderator.encoder.text_calls == 0  # nor did the default requests


def test_exported_towers_match_transformers(baked: Path) -> None:
    exported = load_encoder(Settings(model_dir=baked, model_runtime="torchscript"))
    reference = load_encoder(Settings(model_dir=baked, model_runtime="transformers"))
    pixels = torch.randn(
        5, 3, exported.preprocess.crop_height, exported.preprocess.crop_width
    )  # batch 5 != traced 2
    torch.testing.assert_close(
        exported.encode_pixels(pixels), reference.encode_pixels(pixels), atol=1e-5, rtol=0
    )
    texts = ["a photo", "a much longer description of a photo of a dog on a beach", "x"]
    torch.testing.assert_close(exported.encode_texts(texts), reference.encode_texts(texts), atol=1e-5, rtol=0)
    assert exported.logit_scale == pytest.approx(reference.logit_scale)


@pytest.mark.slow
def test_baked_model_serves_with_the_network_disabled_and_without_transformers(baked: Path) -> None:
    script = """
import socket, sys, json
def refuse(*a, **k):
    raise OSError("network disabled in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
from fastapi.testclient import TestClient
from handler.app import app
with TestClient(app) as client:
    r = client.post("/classify/", files={"image": ("a.png", open(sys.argv[1], "rb").read())})
    m = client.post("/v1/moderate", files={"image": ("a.png", open(sys.argv[1], "rb").read())})
loaded = "transformers" in sys.modules
print(json.dumps({"classify": r.status_code, "moderate": m.status_code, "transformers": loaded}))
"""
    from tests.conftest import image_bytes

    image = baked.parent / "probe.png"
    image.write_bytes(image_bytes("PNG"))
    env = {**os.environ, "MODEL_DIR": str(baked), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(image)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "classify": 200,
        "moderate": 200,
        "transformers": False,
    }


@pytest.mark.slow
def test_bake_command_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "handler",
            "bake",
            "--from-dir",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "m"),
            "--model-id",
            "x/y",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["parity"]["image_max_abs_diff"] <= 1e-4
    assert summary["text_embedding_groups"] == 2
