"""The benchmark's printed report: one table per CPU setting, the goals of issue 12, cost per million."""

from __future__ import annotations

import json
from typing import Any

from handler.decisions import cost as table
from handler.tools.bench_sqs import SQS_BATCH

# AWS Lambda on-demand prices, us-east-1, x86_64, as published on 2025-01-01 (unchanged through 2026).
PRICE_DATE = "2025-01-01"
PRICE_PER_GB_SECOND = 0.0000166667
PRICE_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_MEMORY_MB = 3538  # the memory at which Lambda gives 2 vCPUs, like this machine
#: The S3 path's cost is taken at the rate with this much latency added to each S3 call.
S3_COST_LATENCY = "50ms"
COLUMNS = ("thesis", "onnx-auto", "onnx-fp32", "torch-fp32", "torch-bf16")


def cost_per_million(ms_per_image: float, images_per_request: int) -> float:
    compute = ms_per_image / 1000 * LAMBDA_MEMORY_MB / 1024 * PRICE_PER_GB_SECOND * 1_000_000
    return compute + PRICE_PER_REQUEST * 1_000_000 / images_per_request


def _cells(values: dict[str, Any], fmt: str) -> str:
    return " | ".join(
        format(values[c], fmt) if isinstance(values.get(c), int | float) else "" for c in COLUMNS
    )


def phase_rows(label: str, phase: dict[str, Any], requests: int, batch: int) -> list[str]:
    single, rates = phase["single_ms"], dict(phase["batch_images_per_s"])
    rates["thesis"] = 1000 / single["thesis"]  # the thesis API takes one image per request
    cost = {name: cost_per_million(value, 1) for name, value in single.items()}
    batched = {
        name: cost_per_million(1000 / value, batch) for name, value in rates.items() if name != "thesis"
    }
    paired = phase.get("thesis_ms_by_server", {})
    speedups = {name: paired.get(name, single["thesis"]) / value for name, value in single.items()}
    return [
        f"| {label}: one 1024x768 JPEG over HTTP, ms (median of {requests}) | {_cells(single, '.1f')} |",
        f"| {label}: thesis / this, one JPEG | {_cells(speedups, '.2f')} |",
        f"| {label}: one JPEG, requests back to back (a busy function), ms | "
        f"{_cells(phase.get('back_to_back_ms', {}), '.1f')} |",
        f"| {label}: batch of {batch} over HTTP, images/s | {_cells(rates, '.1f')} |",
        f"| {label}: peak RSS while serving, MiB | {_cells(phase['peak_rss_mib'], '.0f')} |",
        f"| {label}: USD per million images, one per request | {_cells(cost, '.2f')} |",
        f"| {label}: USD per million images, batches of {batch} | {_cells(batched, '.2f')} |",
    ]


def goals(r: dict[str, Any]) -> list[str]:
    """Each goal of issue 12 with its measured value; a bound is (value, lower-is-better)."""
    native, capped, cold = r["native"], r["lambda_cpu"], r["cold_start_s"]
    site = r["sizes_mib"]["runtime_site_packages"]
    checks: list[tuple[str, float, float, bool]] = [
        ("one JPEG, deployed defaults: thesis / service, x", _speedup(native), 5.0, False),
        ("the same with bf16/AMX disabled, x", _speedup(capped), 4.0, False),
        ("batch of 32, images/s", native["batch_images_per_s"]["onnx-auto"], 80.0, False),
        ("cold start: service / bare script, x", cold["onnx-auto"] / cold["bare-script"], 0.25, True),
        ("runtime site-packages, MiB", site if isinstance(site, float) else float("nan"), 400.0, True),
        ("peak RSS while serving, GiB", native["peak_rss_mib"]["onnx-auto"] / 1024, 0.6, True),
    ]
    rows = ["| goal | measured | target | met |", "|---|---|---|---|"]
    for name, value, bound, at_most in checks:
        met = value <= bound if at_most else value >= bound
        rows.append(
            f"| {name} | {value:.2f} | {'<=' if at_most else '>='} {bound:g} | {'yes' if met else 'no'} |"
        )
    return rows


def _s3_path_cost(r: dict[str, Any]) -> float:
    """Lambda bills wall time: the S3 path's cost is at the rate measured with S3's latency added."""
    return cost_per_million(1000 / r["s3_path_images_per_s"][S3_COST_LATENCY], SQS_BATCH)


def costs(r: dict[str, Any]) -> dict[str, float]:
    """USD per million images, for bench.json: each server one image per request (`single_<name>`) and in
    batches (`batch_<name>`) on this CPU as it is, and the S3 path (`s3_path`)."""
    native = r["native"]
    result = {f"single_{name}": cost_per_million(ms, 1) for name, ms in native["single_ms"].items()}
    result |= {
        f"batch_{name}": cost_per_million(1000 / rate, r["batch"])
        for name, rate in native["batch_images_per_s"].items()
    }
    result["s3_path"] = _s3_path_cost(r)
    return result


def _speedup(phase: dict[str, Any]) -> float:
    single = phase["single_ms"]
    thesis = phase.get("thesis_ms_by_server", {}).get("onnx-auto", single["thesis"])
    return float(thesis / single["onnx-auto"])


def format_table(r: dict[str, Any]) -> str:
    header = f"| measure | {' | '.join(COLUMNS)} |"
    rows = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    rows += phase_rows("native", r["native"], r["requests"], r["batch"])
    rows += phase_rows("bf16/AMX off", r["lambda_cpu"], r["requests"], r["batch"])
    cold = r["cold_start_s"]
    rows.append(
        f"| cold start to first answer, s (bare `import torch, transformers` + load + infer: "
        f"{cold['bare-script']:.2f}) | | {cold['onnx-auto']:.2f} | | {cold['torch-fp32']:.2f} | |"
    )
    loaded = {
        **r["native"]["loaded"],
        **{f"{k} (bf16/AMX off)": v for k, v in r["lambda_cpu"]["loaded"].items()},
    }
    sizes = {k: v for k, v in r["sizes_mib"].items() if k != "baked_model"}
    model_files = {k: round(v, 1) for k, v in r["sizes_mib"]["baked_model"].items()}
    lines = [
        "\n".join(rows),
        f"\nCPU: {r['cpu']['model']}, {r['cpu']['cpus']} usable, with {', '.join(r['cpu']['features'])}"
        if "cpu" in r
        else "",
        f"Servers loaded (runtime/precision): {json.dumps(loaded)}",
        f"bf16/AMX off: {json.dumps(r['lambda_cpu']['env'])}, AMX {r['lambda_cpu'].get('amx', 'allowed')}; "
        "ONNX Runtime's CPU provider uses no bf16.",
        "1-minute load average before/after each phase (this machine's other users): "
        f"native {r['native']['load_average_1min']}, bf16/AMX off {r['lambda_cpu']['load_average_1min']}",
        "S3/SQS path (deployed defaults, SQS batches of "
        f"{SQS_BATCH}, moto in its own process), images/s: "
        + ", ".join(f"{v:.1f} with {k} added a call" for k, v in r["s3_path_images_per_s"].items())
        + f"; USD per million S3 images: {_s3_path_cost(r):.2f} (Lambda, at the {S3_COST_LATENCY} rate) + "
        f"{table.usd_per_million_objects(table.typical_record()):.2f} (decision table: "
        f"{table.item_bytes(table.typical_record())}-byte items, DynamoDB on demand, prices of "
        f"{table.PRICE_DATE})",
        f"Installed sizes, MiB: {json.dumps(sizes)}",
        f"Baked model files, MiB: {json.dumps(model_files)}",
        f"Costs: Lambda x86_64 at {LAMBDA_MEMORY_MB} MB, prices of {PRICE_DATE}, from the measured ms.",
        "\n" + "\n".join(goals(r)),
        "\nParity (random weights: probabilities are nearly flat, so agreement proves little): "
        + json.dumps(r["parity"]),
    ]
    return "\n".join(lines)
