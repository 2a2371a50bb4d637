"""Precision choices: auto/int8/fp32 on a baked directory, bf16 on a raw checkpoint, clean fallbacks,
and the compare-precision command on the caller's own images."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handler.core import model as model_module
from handler.core.model import Precision, Runtime, load_encoder
from handler.core.policy import default_policy
from handler.settings import Settings
from handler.tools.parity import compare, load_pair
from tests.conftest import image_bytes

ROOT = Path(__file__).parents[1]


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_module, "cpu_has_native_bf16", lambda: True)


def test_raw_checkpoint_serves_fp32_through_transformers_by_default(tiny_model_dir: Path) -> None:
    encoder = load_encoder(Settings(model_dir=tiny_model_dir))
    assert (encoder.runtime, encoder.precision) == (Runtime.transformers, Precision.fp32)


def test_bf16_image_tower_stays_within_a_measured_bound_of_fp32(
    tiny_model_dir: Path, native_bf16: None
) -> None:
    reference = load_encoder(Settings(model_dir=tiny_model_dir, inference_precision="fp32"))
    fast = load_encoder(Settings(model_dir=tiny_model_dir, inference_precision="bf16"))
    assert fast.precision is Precision.bf16
    pixels = np.random.default_rng(3).standard_normal((6, 3, 64, 64)).astype(np.float32)
    embeddings = fast.encode_pixels(pixels)
    assert embeddings.dtype == np.float32
    assert float((reference.encode_pixels(pixels) * embeddings).sum(-1).min()) > 0.99


@pytest.mark.parametrize(
    ("where", "requested", "bf16_cpu", "message"),
    [
        ("raw", "bf16", False, "needs AVX512-BF16 or AMX"),
        ("raw", "int8", True, "needs a baked model"),
        ("baked", "bf16", True, "transformers runtime only"),
    ],
)
def test_a_precision_the_runtime_or_cpu_cannot_run_falls_back_to_fp32_with_a_warning(
    where: str,
    requested: str,
    bf16_cpu: bool,
    message: str,
    tiny_model_dir: Path,
    baked: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(model_module, "cpu_has_native_bf16", lambda: bf16_cpu)
    model_dir = tiny_model_dir if where == "raw" else baked
    with caplog.at_level(logging.WARNING, logger="handler.core.model"):
        encoder = load_encoder(Settings(model_dir=model_dir, inference_precision=requested))
    assert encoder.precision is Precision.fp32
    assert message in caplog.text
    assert encoder.encode_images([Image.new("RGB", (90, 70), (9, 9, 9))]).shape[0] == 1


def test_onnx_runtime_needs_a_baked_directory(tiny_model_dir: Path) -> None:
    from handler.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="no ONNX export"):
        load_encoder(Settings(model_dir=tiny_model_dir, model_runtime="onnx"))


def test_inference_threads_follow_the_setting_and_the_old_torch_threads_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TORCH_THREADS", "3")
    assert Settings().inference_threads == 3
    monkeypatch.setenv("INFERENCE_THREADS", "2")
    assert Settings().inference_threads == 2


def test_cpu_count_comes_from_the_cgroup_quota_not_the_host(tmp_path: Path) -> None:
    from handler.core.cpu import available_cpus, cgroup_cpu_limit

    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    assert available_cpus(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_int8_parity_report_compares_embeddings_top1_and_verdicts(baked: Path) -> None:
    reference, fast = load_pair(baked, Precision.int8)
    assert (reference.precision, fast.precision) == (Precision.fp32, Precision.int8)
    images = [Image.new("RGB", (80, 60), (i * 20, 255 - i * 20, 7)) for i in range(10)]
    report = compare(reference, fast, images, ["a cat", "a dog"], default_policy()).as_dict()
    assert report["images"] == 10
    assert report["precision"] == "int8"
    assert 0.97 < report["cosine_min"] <= report["cosine_mean"] <= 1.0001
    assert 0.0 <= report["max_probability_diff"] < 0.05
    assert report["verdict_agreement"] is not None


def _images(tmp_path: Path) -> list[str]:
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(image_bytes("JPEG", color=(i * 60, 10, 200)))
        paths.append(str(path))
    return paths


@pytest.mark.slow
def test_compare_precision_command_checks_int8_on_the_callers_images(baked: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MODEL_DIR": str(baked)}
    command = [
        sys.executable,
        "-m",
        "handler",
        "compare-precision",
        *_images(tmp_path),
        "--classes",
        "cat, dog",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["images"], report["precision"]) == (3, "int8")


@pytest.mark.slow
def test_compare_precision_int8_on_a_raw_checkpoint_says_to_bake(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "MODEL_DIR": str(tiny_model_dir)}
    command = [
        sys.executable,
        "-m",
        "handler",
        "compare-precision",
        *_images(tmp_path),
        "--precision",
        "int8",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 2
    assert "int8 needs a baked model directory" in result.stderr
