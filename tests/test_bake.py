"""The bake step: ONNX towers that load with onnxruntime alone and answer like transformers; the int8 gate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from handler.core.model import Precision, Runtime, load_encoder
from handler.core.moderator import build_moderator
from handler.core.onnx_runtime import read_manifest
from handler.core.policy import default_policy
from handler.core.text_embeddings import load_text_embeddings
from handler.exceptions import ConfigurationError
from handler.settings import Settings
from handler.tools.bake import bake
from handler.tools.int8_gate import Gate

ROOT = Path(__file__).parents[1]


def test_bake_writes_onnx_towers_and_no_torch_weights(baked: Path) -> None:
    files = sorted(str(p.relative_to(baked)) for p in baked.rglob("*") if p.is_file())
    assert {
        "onnx/image_fp32.onnx",
        "onnx/image_int8.onnx",
        "onnx/image_int8_w7.onnx",
        "onnx/text_fp32.onnx",
        "onnx/manifest.json",
        "text_embeddings.safetensors",
        "backbone_fingerprint.json",
    } <= set(files)
    assert not any(name.endswith((".bin", ".pt", ".h5", ".msgpack")) for name in files)
    assert "model.safetensors" not in files, "the ONNX files hold the weights; the image ships them once"
    assert (baked / "MODEL_ID").read_text().strip() == "test/tiny-clip"


def test_manifest_records_fp32_parity_and_the_int8_gate_on_photographs(baked: Path) -> None:
    manifest = read_manifest(baked)
    assert manifest["parity_fp32"]["image_max_abs_diff"] <= 1e-4
    assert manifest["parity_fp32"]["text_max_abs_diff"] <= 1e-4
    for tower in ("int8", "int8-w7"):
        int8 = manifest[tower]
        assert int8["passed"] is True
        assert int8["images"] >= 48, "scikit-image's photographs, mirrored and cropped"
        assert "scikit-image" in int8["source"]
        assert int8["cosine_min"] >= int8["gate"]["min_cosine"]
        assert 0.0 <= int8["verdict_agreement"] <= 1.0
    assert isinstance(manifest["int8_products_exact_on_bake_cpu"], bool)


def _quantised_weights(path: Path) -> list[np.ndarray]:
    """The int8 weight matrices of a dynamically quantised graph, (K, N): K is the summed axis."""
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    return [w for w in weights if w.dtype == np.int8 and w.ndim == 2]


def _largest_pair_of_products(weights: np.ndarray) -> int:
    """The largest |a0*w0 + a1*w1| over activations a in 0..255 and neighbouring weights along K: the
    16-bit sum VPMADDUBSW forms (x86 without VNNI or AMX), saturating past 32767."""
    w = weights.astype(np.int64)
    w = w[: w.shape[0] // 2 * 2].reshape(-1, 2, w.shape[1])
    positive = np.clip(w, 0, None).sum(axis=1)
    negative = np.clip(-w, 0, None).sum(axis=1)
    return int(255 * max(positive.max(), negative.max()))


def test_the_7_bit_tower_cannot_be_clipped_by_any_cpu_and_the_8_bit_one_can(baked: Path) -> None:
    narrow = _quantised_weights(baked / "onnx" / "image_int8_w7.onnx")
    wide = _quantised_weights(baked / "onnx" / "image_int8.onnx")
    assert narrow
    assert len(narrow) == len(wide)
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in narrow) <= 64
    assert max(_largest_pair_of_products(w) for w in narrow) <= 32767
    # Why the 7-bit tower exists: some neighbouring 8-bit weights can add up past 16 bits.
    assert max(_largest_pair_of_products(w) for w in wide) > 32767


def test_each_image_layer_attends_in_one_fused_node_after_one_projection(baked: Path) -> None:
    """The exported graph's shape is what makes one image fast (handler.tools.onnx_attention): per layer,
    query, key and value from one MatMul and attention in one MultiHeadAttention node, not torch.onnx's
    decomposition (Softmax, MatMuls, a Transpose for each of q, k, v, k again, and the output)."""
    import onnx

    layers = json.loads((baked / "config.json").read_text())["vision_config"]["num_hidden_layers"]
    for tower in ("image_fp32", "image_int8", "image_int8_w7"):
        graph = onnx.load(str(baked / "onnx" / f"{tower}.onnx")).graph
        ops = Counter(node.op_type for node in graph.node)
        assert ops["MultiHeadAttention"] == layers, tower
        assert ops["Softmax"] == 0, tower
        assert ops["Transpose"] <= 1, f"{tower}: only the patch embedding's cut, not attention's heads"
        # Weight MatMuls: q|k|v, out, fc1, fc2 per layer; the last q, k|v, out, fc1, fc2; patches, projection.
        weight_matmuls = ops["MatMulInteger"] if tower != "image_fp32" else ops["MatMul"] + ops["Gemm"]
        assert weight_matmuls == 4 * layers + 3, tower


def test_baked_directory_serves_int8_by_default_and_fp32_on_request(baked: Path) -> None:
    auto = load_encoder(Settings(model_dir=baked))
    assert auto.runtime is Runtime.onnx
    assert auto.precision.is_int8
    fp32 = load_encoder(Settings(model_dir=baked, inference_precision="fp32"))
    assert fp32.precision is Precision.fp32
    pixels = np.random.default_rng(3).standard_normal((4, 3, 64, 64)).astype(np.float32)
    cosine = (auto.encode_pixels(pixels) * fp32.encode_pixels(pixels)).sum(-1)
    assert float(cosine.min()) > 0.97


def test_int8_that_misses_its_gate_is_left_out_and_auto_serves_fp32(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "strict"
    summary = bake(out, "test/strict", from_dir=tiny_model_dir, gate=Gate(min_cosine=1.01))
    assert summary["int8_used_by_auto"] is False
    assert summary["int8_w7_used_by_auto"] is False
    assert "int8 and int8-w7 missed their gates" in summary["note"]
    assert "auto serves fp32 on CPUs with VNNI or AMX and on Arm, fp32 on x86 without them" in summary["note"]
    for tower, file in (("int8", "image_int8.onnx"), ("int8-w7", "image_int8_w7.onnx")):
        assert not (out / "onnx" / file).exists()
        assert read_manifest(out)[tower]["passed"] is False
        assert read_manifest(out)[tower]["cosine_min"] > 0.9, "the figures are kept"
    for requested in ("auto", "int8", "int8-w7"):
        precision = load_encoder(Settings(model_dir=out, inference_precision=requested)).precision
        assert precision is Precision.fp32


def test_the_bench_bakes_again_a_checkpoint_that_older_code_baked(
    baked: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """`make bench` keeps its bake between runs; one whose image graph this code no longer exports would
    measure the old graph, so it is baked again (and a current one is kept)."""
    from handler.tools.bench import ensure_checkpoints
    from handler.tools.export_onnx import IMAGE_GRAPH_REVISION

    assert read_manifest(baked)["image_graph_revision"] == IMAGE_GRAPH_REVISION
    kept = tmp_path / "clip-base-baked"
    shutil.copytree(baked, kept)
    manifest_path = kept / "onnx" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["image_graph_revision"] = IMAGE_GRAPH_REVISION - 1
    manifest_path.write_text(json.dumps(manifest))
    (kept / "left-by-older-code").write_text("")

    _, rebaked = ensure_checkpoints(tmp_path, tiny_model_dir)
    assert rebaked == kept
    assert not (kept / "left-by-older-code").exists()
    assert read_manifest(kept)["image_graph_revision"] == IMAGE_GRAPH_REVISION

    (kept / "current").write_text("")
    ensure_checkpoints(tmp_path, tiny_model_dir)
    assert (kept / "current").exists()


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


def test_exported_fp32_towers_match_transformers(baked: Path, tiny_model_dir: Path) -> None:
    exported = load_encoder(Settings(model_dir=baked, inference_precision="fp32"))
    reference = load_encoder(Settings(model_dir=tiny_model_dir, model_runtime="transformers"))
    pixels = np.random.default_rng(0).standard_normal((5, 3, 64, 64)).astype(np.float32)  # batch 5 != 2
    np.testing.assert_allclose(exported.encode_pixels(pixels), reference.encode_pixels(pixels), atol=1e-5)
    texts = ["a photo", "a much longer description of a photo of a dog on a beach", "x"]
    np.testing.assert_allclose(exported.encode_texts(texts), reference.encode_texts(texts), atol=1e-5)
    assert exported.logit_scale == pytest.approx(reference.logit_scale)


@pytest.mark.slow
def test_baked_model_serves_offline_with_torch_transformers_and_the_build_tools_unimportable(
    baked: Path,
) -> None:
    script = """
import socket, sys, json
for blocked in ("torch", "transformers", "onnx", "onnxscript", "skimage", "sklearn"):
    sys.modules[blocked] = None  # importing any of them now raises: the Lambda image has none
def refuse(*a, **k):
    raise OSError("network disabled in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
from fastapi.testclient import TestClient
from handler.app import app
with TestClient(app) as client:
    r = client.post("/classify/", files={"image": ("a.png", open(sys.argv[1], "rb").read())})
    m = client.post("/v1/moderate", files={"image": ("a.png", open(sys.argv[1], "rb").read())})
    image = open(sys.argv[1], "rb").read()
    n = client.post("/classify/", data={"classes": "a cat, a dog"}, files={"image": ("a.png", image)})
import handler.main
print(json.dumps({"classify": r.status_code, "moderate": m.status_code, "new_labels": n.status_code}))
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
        "new_labels": 200,
    }


@pytest.mark.slow
def test_bake_command_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "handler", "bake", "--from-dir", str(tiny_model_dir)]
    command += ["--out", str(tmp_path / "m"), "--model-id", "x/y", "--int8-min-cosine", "0.5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["parity_fp32"]["image_max_abs_diff"] <= 1e-4
    assert summary["int8"]["gate"]["min_cosine"] == 0.5
    assert summary["text_embedding_groups"] == 2
