"""`python -m handler bench`: the thesis's code path against this service's runtimes, in one run.

Two phases on the same checkpoints. `native`: this CPU as it is (bf16 and AMX allowed). `lambda-cpu`:
a child process that stands for Lambda's Intel hosts (AVX-512 with VNNI, no bf16, no AMX): oneDNN capped
below bf16/AMX (`ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`; torch's fp32 GEMMs never use bf16), and AMX
refused by the kernel to it and the servers it starts (`handler.tools.amx_off`: ONNX Runtime's int8
GEMMs use AMX-INT8 wherever they may, and no setting of its own turns that off). ONNX Runtime's CPU
provider uses no bf16 in either phase. In each phase each server is measured against the
thesis in its own loop, alternating request by request on different images, so neither the machine's
noise nor the cache favours one side (and no third model runs between a pair's requests). Also: batches,
cold starts, peak RSS, installed sizes, the S3 path, parity, cost.
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from handler.tools.bench_footprint import model_dir_mib, package_mib, runtime_site_packages_mib
from handler.tools.bench_http import Server, bare_cold_start, make_images, ms, serve, thesis_path
from handler.tools.bench_sqs import SQS_BATCH, sqs_path_throughput
from handler.tools.bench_table import costs, format_table

LAMBDA_CPU_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}
#: Batch requests per server and phase; the median is reported (the machine's neighbours make any one
#: of them a few percent faster or slower).
BATCH_REPEATS = 5
#: Idle time after each timed request: longer than the worker threads of ONNX Runtime and OpenMP keep
#: spinning after a call (10-50 ms for ONNX Runtime here), so no request shares the two cores with the
#: previous one's spinning threads. Without it the thesis ran 10-20% slower right after a service request
#: (and a server right after another ONNX Runtime server up to 60% slower).
IDLE_GAP_S = 0.05


def ensure_checkpoints(work: Path, model_dir: Path | None) -> tuple[Path, Path]:
    """(raw checkpoint, its bake): the given checkpoint or a random-weight ViT-B/32, each made once."""
    from handler.tools.bake import bake
    from handler.tools.random_checkpoint import make_random_checkpoint

    raw = model_dir or work / "clip-base"
    if model_dir is None and not (raw / "model.safetensors").is_file():
        make_random_checkpoint(raw, size="base")
    baked = work / "clip-base-baked"
    if not _baked_by_this_code(baked):
        if baked.exists():
            import shutil

            shutil.rmtree(baked)
        bake(baked, "random/clip-vit-base-patch32-sized", from_dir=raw)
    return raw, baked


def _baked_by_this_code(baked: Path) -> bool:
    """A complete bake whose image graph is the one this code exports (not one left by older code)."""
    from handler.core.onnx_runtime import read_manifest
    from handler.exceptions import ConfigurationError
    from handler.tools.export_onnx import IMAGE_GRAPH_REVISION

    if not (baked / "text_embeddings.safetensors").is_file():
        return False
    try:
        return read_manifest(baked).get("image_graph_revision") == IMAGE_GRAPH_REVISION
    except ConfigurationError:
        return False


def server_specs(raw: Path, baked: Path, native: bool) -> dict[str, tuple[Path, dict[str, str]]]:
    specs = {
        "onnx-auto": (baked, {}),  # the deployed default: int8 when the bake gate passed
        "onnx-fp32": (baked, {"INFERENCE_PRECISION": "fp32"}),
        "torch-fp32": (raw, {"INFERENCE_PRECISION": "fp32"}),  # `make serve` on a raw checkpoint
    }
    if native:
        specs["torch-bf16"] = (raw, {"INFERENCE_PRECISION": "bf16"})
    return specs


def run_phase(work: Path, raw: Path, baked: Path, requests: int, batch: int, native: bool) -> dict[str, Any]:
    """Latency, throughput and memory of every server against the thesis path, on this process's CPU."""
    from contextlib import ExitStack

    load_before = os.getloadavg()[0]
    specs = server_specs(raw, baked, native)
    images = make_images(2 * requests + len(specs) * batch + 1, seed=7)
    logs = work / ("logs-native" if native else "logs-lambda-cpu")
    logs.mkdir(parents=True, exist_ok=True)
    thesis = thesis_path(raw)
    with ExitStack() as stack:
        servers: dict[str, Server] = {
            name: stack.enter_context(serve(name, path, images[0], logs, **env))
            for name, (path, env) in specs.items()
        }
        single: dict[str, list[float]] = {name: [] for name in servers}
        thesis_by: dict[str, list[float]] = {name: [] for name in servers}
        pairs = images[1 : 1 + 2 * requests]
        for name, server in servers.items():  # each server against the thesis, request by request
            for thesis_image, server_image in zip(pairs[0::2], pairs[1::2], strict=True):
                thesis_by[name].append(ms(lambda d=thesis_image: thesis(d)))  # type: ignore[misc]
                time.sleep(IDLE_GAP_S)
                single[name].append(ms(lambda s=server, d=server_image: s.classify(d)))  # type: ignore[misc]
                time.sleep(IDLE_GAP_S)
        # A busy function: one server's requests back to back, nothing in between (not a goal's measure;
        # it says what the alternating figure pays for finding the server idle and its cache cold).
        back_to_back = {
            name: statistics.median([ms(lambda s=server, d=d: s.classify(d)) for d in pairs[1::2]])  # type: ignore[misc]
            for name, server in servers.items()
        }
        image = iter(images[1 + 2 * requests :])
        rates: dict[str, list[float]] = {name: [] for name in servers}
        chunks = {name: [next(image) for _ in range(batch)] for name in servers}
        for _ in range(BATCH_REPEATS):
            for name, server in servers.items():
                elapsed = ms(lambda s=server, c=chunks[name]: s.batch(c))  # type: ignore[misc]
                rates[name].append(batch / (elapsed / 1000))
                time.sleep(IDLE_GAP_S)
        every_thesis = [t for values in thesis_by.values() for t in values]
        return {
            "single_ms": {
                "thesis": statistics.median(every_thesis),
                **{name: statistics.median(values) for name, values in single.items()},
            },
            # the thesis's median in each server's own alternation: what that server's ratio divides
            "thesis_ms_by_server": {name: statistics.median(values) for name, values in thesis_by.items()},
            "back_to_back_ms": back_to_back,
            "batch_images_per_s": {name: statistics.median(values) for name, values in rates.items()},
            "peak_rss_mib": {name: server.peak_rss_mib() for name, server in servers.items()},
            "loaded": {name: server.precision for name, server in servers.items()},
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other users
        }


def cold_starts(work: Path, raw: Path, baked: Path, sample: bytes, runs: int) -> dict[str, float]:
    """Process start to first answer, alternating: bare torch+transformers script, baked ONNX, raw."""
    path = work / "sample.jpg"
    path.write_bytes(sample)
    logs = work / "logs-cold"
    logs.mkdir(exist_ok=True)
    times: dict[str, list[float]] = {"bare-script": [], "onnx-auto": [], "torch-fp32": []}
    for _ in range(runs):
        times["bare-script"].append(bare_cold_start(raw, path))
        for name, model_dir in (("onnx-auto", baked), ("torch-fp32", raw)):
            with serve(f"cold-{name}", model_dir, sample, logs) as server:
                times[name].append(server.cold_start_s)
    return {name: statistics.median(values) for name, values in times.items()}


def run(work: Path, model_dir: Path | None, requests: int, batch: int, cold_runs: int) -> dict[str, Any]:
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    raw, baked = ensure_checkpoints(work, model_dir)
    results: dict[str, Any] = {"model_dir": str(baked), "requests": requests, "batch": batch}
    results["cpu"] = cpu_description()
    results["cold_start_s"] = cold_starts(work, raw, baked, make_images(1, seed=3)[0], cold_runs)
    results["native"] = run_phase(work, raw, baked, requests, batch, native=True)
    results["lambda_cpu"] = lambda_cpu_phase(work, model_dir, requests, batch)
    results["s3_path_images_per_s"] = sqs_path_throughput(baked, make_images(4 * SQS_BATCH, seed=11))
    results["sizes_mib"] = {
        "runtime_site_packages": runtime_site_packages_mib(work),
        **{f"dev_{k}": v for k, v in package_mib("torch", "transformers", "onnxruntime").items()},
        "baked_model": model_dir_mib(baked),
    }
    results["parity"] = parity(raw, baked)
    results["cost_per_million_usd"] = costs(results)  # read by `backfill --bench`
    return results


def lambda_cpu_phase(work: Path, model_dir: Path | None, requests: int, batch: int) -> dict[str, Any]:
    """The same phase in a child process whose torch cannot use bf16 or AMX (the variables must be set
    before oneDNN starts, and this process has used torch already)."""
    command = [sys.executable, "-m", "handler", "bench", "--work", str(work), "--phase", "lambda-cpu"]
    command += ["--requests", str(requests), "--batch", str(batch)]
    if model_dir is not None:
        command += ["--model-dir", str(model_dir)]
    subprocess.run(command, env={**os.environ, **LAMBDA_CPU_ENV}, check=True)
    phase: dict[str, Any] = json.loads((work / "lambda-cpu.json").read_text())
    return {**phase, "env": LAMBDA_CPU_ENV}


def run_lambda_cpu_phase(work: Path, model_dir: Path | None, requests: int, batch: int) -> None:
    """The child process of `lambda_cpu_phase`: AMX refused first (before any library has asked for it,
    and inherited by the servers it starts), then the same phase as the native one."""
    from handler.core.cpu import cpu_flags
    from handler.tools import amx_off

    amx = "not on this CPU"
    if amx_off.supported() and "amx_int8" in cpu_flags():
        amx_off.deny_amx()
        amx = "refused by a seccomp filter (handler.tools.amx_off)"
    work = work.resolve()
    raw, baked = ensure_checkpoints(work, model_dir)
    phase = run_phase(work, raw, baked, requests, batch, native=False)
    (work / "lambda-cpu.json").write_text(json.dumps({**phase, "amx": amx}, indent=2))


#: The CPU features that decide which kernels run: the ratios move with them (and the thesis's torch
#: fp32 is much faster on some hosts than on others), so every run says what it ran on.
KERNEL_FEATURES = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_description() -> dict[str, Any]:
    from handler.core.cpu import available_cpus, cpu_flags, cpu_model_name

    flags = cpu_flags()
    return {
        "model": cpu_model_name() or platform.processor() or platform.machine(),
        "cpus": available_cpus(),
        "features": [flag for flag in KERNEL_FEATURES if flag in flags],
    }


def parity(raw: Path, baked: Path) -> dict[str, Any]:
    """int8: the bake's gate figures (scikit-image photographs). bf16: 100 images, when this CPU has it."""
    from handler.core.cpu import cpu_has_native_bf16
    from handler.core.model import Precision
    from handler.core.onnx_runtime import read_manifest
    from handler.core.policy import default_policy
    from handler.tools.parity import compare, load_pair

    manifest = read_manifest(baked)
    result: dict[str, Any] = {"int8_gate": manifest["int8"], "int8_w7_gate": manifest.get("int8-w7")}
    if not cpu_has_native_bf16():
        result["bf16"] = {"skipped": "this CPU has no native bf16"}
        return result
    reference, fast = load_pair(raw, Precision.bf16)
    pictures = [Image.open(io.BytesIO(d)).convert("RGB") for d in make_images(100, seed=1, size=(320, 240))]
    result["bf16"] = compare(reference, fast, pictures, ["nsfw", "sfw"], default_policy()).as_dict()
    return result


__all__ = ["format_table", "run", "run_lambda_cpu_phase"]
