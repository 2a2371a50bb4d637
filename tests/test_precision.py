"""Precision choices: auto/int8/fp32 on a baked directory, bf16 on a raw checkpoint, clean fallbacks,
and the compare-precision command on the caller's own images."""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handler.core import model as model_module
from handler.core.cpu import cpu_flags, cpu_model_name, int8_products_exact
from handler.core.model import Precision, Runtime, load_encoder
from handler.core.onnx_runtime import MANIFEST_FILE, read_manifest
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


def test_the_onnx_worker_threads_stop_spinning_when_a_forward_pass_ends(baked: Path) -> None:
    """Between requests the tower's worker threads must leave the cores to the rest of the process (the
    response, the next decode, S3 reads): ONNX Runtime's threads otherwise spin on for tens of ms after
    each run, about a core's worth of CPU."""
    encoder = load_encoder(Settings(model_dir=baked, inference_precision="auto", inference_threads=2))
    images = [Image.open(io.BytesIO(image_bytes(color=color))) for color in ("red", "blue")]
    encoder.encode_images(images)
    spent = []
    for _ in range(3):
        encoder.encode_images(images)
        before = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(0.3)
        after = resource.getrusage(resource.RUSAGE_SELF)
        spent.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    assert min(spent) < 0.01, f"CPU seconds used in the 0.3 s after a forward pass: {spent}"


def test_cpu_count_comes_from_the_cgroup_quota_not_the_host(tmp_path: Path) -> None:
    from handler.core.cpu import available_cpus, cgroup_cpu_limit

    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    assert available_cpus(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))


def this_cpus_int8() -> str:
    """The int8 tower `auto` and `int8` pick on the machine running the tests."""
    return "int8" if int8_products_exact() else "int8-w7"


def exact_int8_cpu(monkeypatch: pytest.MonkeyPatch, exact: bool) -> None:
    monkeypatch.setattr(model_module, "int8_products_exact", lambda: exact)


AVX512_CORE = ("avx512f", "avx512bw", "avx512dq", "avx512vl")


@pytest.mark.parametrize(
    ("machine", "flags", "exact"),
    [
        ("x86_64", {"avx2", "fma"}, False),  # AMD before Zen 4 (Lambda's AMD hosts), Intel before Skylake-SP
        ("x86_64", {"avx2", *AVX512_CORE}, False),  # Skylake-SP: AVX-512 without VNNI
        ("x86_64", {"avx2", *AVX512_CORE, "avx512_vnni"}, True),  # Cascade Lake and later, Zen 4
        ("x86_64", {"avx2", *AVX512_CORE, "avx512_vnni", "amx_int8", "amx_tile"}, True),  # Sapphire Rapids
        ("x86_64", {"avx2", "avx_vnni"}, True),  # Alder Lake and later client cores
        ("x86_64", {"avx2", "avx_vnni", *AVX512_CORE}, False),  # MLAS's AVX-512 kernel replaces AVX-VNNI's
        ("aarch64", set(), True),  # Graviton: dot products into 32 bits
    ],
)
def test_which_cpus_sum_int8_products_exactly(machine: str, flags: set[str], exact: bool) -> None:
    assert int8_products_exact(machine, frozenset(flags)) is exact


def test_cpu_flags_are_read_from_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert cpu_flags(x86) == {"fpu", "avx2", "avx512_vnni"}
    assert cpu_model_name(x86) == "Xeon"
    assert cpu_model_name(tmp_path / "arm") == ""
    assert cpu_flags(arm) == {"fp", "asimd", "asimddp"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(("exact", "served"), [(True, Precision.int8), (False, Precision.int8_w7)])
def test_auto_and_int8_serve_the_int8_tower_made_for_the_cpu(
    baked: Path, monkeypatch: pytest.MonkeyPatch, exact: bool, served: Precision
) -> None:
    exact_int8_cpu(monkeypatch, exact)
    for requested in ("auto", "int8"):
        assert load_encoder(Settings(model_dir=baked, inference_precision=requested)).precision is served
    # By name, the 7-bit tower runs on any CPU (the same numbers everywhere).
    w7 = load_encoder(Settings(model_dir=baked, inference_precision="int8-w7"))
    assert w7.precision is Precision.int8_w7


def test_the_two_int8_towers_are_different_models_each_close_to_fp32(
    baked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact_int8_cpu(monkeypatch, True)
    pixels = np.random.default_rng(5).standard_normal((4, 3, 64, 64)).astype(np.float32)
    fp32, int8, w7 = (
        load_encoder(Settings(model_dir=baked, inference_precision=p)).encode_pixels(pixels)
        for p in ("fp32", "int8", "int8-w7")
    )
    assert not np.array_equal(int8, w7)
    for fast in (int8, w7):
        assert float((fast * fp32).sum(-1).min()) > 0.97


def test_a_bake_without_the_7_bit_tower_serves_fp32_where_the_cpu_needs_it(
    baked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    old = tmp_path / "old-bake"
    shutil.copytree(baked, old)
    manifest = read_manifest(old)
    del manifest["int8-w7"]
    (old / "onnx" / MANIFEST_FILE).write_text(json.dumps(manifest))
    (old / "onnx" / "image_int8_w7.onnx").unlink()

    exact_int8_cpu(monkeypatch, True)
    assert load_encoder(Settings(model_dir=old)).precision is Precision.int8
    exact_int8_cpu(monkeypatch, False)
    with caplog.at_level(logging.WARNING, logger="handler.core.model"):
        assert load_encoder(Settings(model_dir=old)).precision is Precision.fp32
    assert "no int8-w7 tower" in caplog.text
    assert "bake again" in caplog.text


def test_int8_parity_report_compares_embeddings_top1_and_verdicts(baked: Path) -> None:
    reference, fast = load_pair(baked, Precision.int8)
    assert (reference.precision, fast.precision) == (Precision.fp32, Precision(this_cpus_int8()))
    images = [Image.new("RGB", (80, 60), (i * 20, 255 - i * 20, 7)) for i in range(10)]
    report = compare(reference, fast, images, ["a cat", "a dog"], default_policy()).as_dict()
    assert report["images"] == 10
    assert report["precision"] == this_cpus_int8()
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
    assert (report["images"], report["precision"]) == (3, this_cpus_int8())


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
