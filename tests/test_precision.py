"""The bf16 fast path: parity with fp32, a clean fallback where the CPU cannot run it, the compare command."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from handler.core import model as model_module
from handler.core.model import Precision, load_encoder
from handler.core.policy import default_policy
from handler.settings import Settings
from handler.tools.parity import compare
from tests.conftest import image_bytes

ROOT = Path(__file__).parents[1]


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module, "cpu_has_native_bf16", lambda: True)


@pytest.mark.parametrize("runtime", ["torchscript", "transformers"])
def test_bf16_image_tower_stays_within_a_measured_bound_of_fp32(
    baked: Path, native_bf16: None, runtime: str
) -> None:
    reference = load_encoder(Settings(model_dir=baked, model_runtime=runtime, inference_precision="fp32"))
    fast = load_encoder(Settings(model_dir=baked, model_runtime=runtime, inference_precision="bf16"))
    assert fast.precision is Precision.bf16
    pixels = torch.randn(
        6,
        3,
        fast.preprocess.crop_height,
        fast.preprocess.crop_width,
        generator=torch.Generator().manual_seed(3),
    )
    cosine = (reference.encode_pixels(pixels) * fast.encode_pixels(pixels)).sum(-1)
    assert fast.encode_pixels(pixels).dtype == torch.float32
    assert float(cosine.min()) > 0.99


def test_bf16_falls_back_to_fp32_on_a_cpu_without_it(
    baked: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(model_module, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="handler.core.model"):
        encoder = load_encoder(Settings(model_dir=baked, inference_precision="bf16"))
    assert encoder.precision is Precision.fp32
    assert "using fp32" in caplog.text
    image = Image.new("RGB", (90, 70), (9, 9, 9))
    assert encoder.encode_images([image]).shape[0] == 1


def test_parity_report_compares_embeddings_top1_and_verdicts(baked: Path, native_bf16: None) -> None:
    reference = load_encoder(Settings(model_dir=baked, inference_precision="fp32"))
    fast = load_encoder(Settings(model_dir=baked, inference_precision="bf16"))
    images = [Image.new("RGB", (80, 60), (i * 20, 255 - i * 20, 7)) for i in range(10)]
    report = compare(reference, fast, images, ["a cat", "a dog"], default_policy()).as_dict()
    assert report["images"] == 10
    assert report["precision"] == "bf16"
    assert 0.99 < report["cosine_min"] <= report["cosine_mean"] <= 1.0001
    assert 0.0 <= report["max_probability_diff"] < 0.05
    assert report["verdict_agreement"] is not None


@pytest.mark.slow
def test_compare_precision_command(baked: Path, tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(image_bytes("JPEG", color=(i * 60, 10, 200)))
        paths.append(str(path))
    env = {**os.environ, "MODEL_DIR": str(baked)}
    result = subprocess.run(
        [sys.executable, "-m", "handler", "compare-precision", *paths, "--classes", "cat, dog"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    if model_module.cpu_has_native_bf16():
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["images"] == 3
    else:
        assert result.returncode == 2
        assert "cannot run bf16" in result.stderr
