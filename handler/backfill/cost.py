"""What a backfill job costs before it runs: Batch Operations' fees, the function, the S3 requests it makes.

Prices are AWS's published on-demand prices in us-east-1 as of PRICE_DATE; other regions differ a little.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from handler.exceptions import InputError

PRICE_DATE = "2025-01-01"
BATCH_OPERATIONS_PER_JOB = 0.25
BATCH_OPERATIONS_PER_OBJECT = 1.00 / 1_000_000
S3_GET_CLASS = 0.0004 / 1000  # GET, HEAD and other reads, per request
S3_PUT_CLASS = 0.005 / 1000  # PUT, COPY, POST, LIST (and PutObjectTagging), per request
# What the function does per object on S3: HEAD, GetObjectTagging, a ranged GET for the signature, the
# GET of the body (reads), then PutObjectTagging (a write). A quarantine adds a copy and a delete.
FUNCTION_READS_PER_OBJECT = 4
FUNCTION_WRITES_PER_OBJECT = 1
# `make bench`, 2026-12-02 08:37 UTC (docs/performance.md): one image per invocation, the baked model at the
# deployed default (int8), Lambda prices of PRICE_DATE; Batch Operations invokes the function that way
# (one task per invocation).
BENCH_DATE = "2026-12-02"
LAMBDA_PER_IMAGE = 1.55 / 1_000_000


@dataclass(frozen=True)
class Estimate:
    objects: int
    batch_operations_job_usd: float
    batch_operations_objects_usd: float
    function_usd: float
    function_s3_requests_usd: float
    listing_usd: float
    total_usd: float
    prices_as_of: str
    function_cost_per_image_usd: float
    function_cost_from: str

    def as_dict(self) -> dict[str, object]:
        return {k: round(v, 9) if isinstance(v, float) else v for k, v in asdict(self).items()}


def lambda_cost_per_image(bench_json: Path | None, precision: str = "auto") -> tuple[float, str]:
    """The function's cost per image from a `make bench` result file (`bench.json`: the baked model at
    INFERENCE_PRECISION=`precision`, one image per invocation), else the docs' measured figure."""
    if bench_json is None:
        return LAMBDA_PER_IMAGE, f"make bench, {BENCH_DATE} (int8, one image per invocation)"
    key = f"single_onnx-{precision}"
    try:
        per_million = json.loads(bench_json.read_text())["cost_per_million_usd"][key]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{bench_json} has no cost_per_million_usd.{key}; give the bench.json of a current `make bench`"
        ) from exc
    return float(per_million) / 1_000_000, f"{bench_json} ({key})"


def estimate(objects: int, listing_requests: int, per_image: float, per_image_from: str) -> Estimate:
    batch_objects = objects * BATCH_OPERATIONS_PER_OBJECT
    function = objects * per_image
    requests = objects * (
        FUNCTION_READS_PER_OBJECT * S3_GET_CLASS + FUNCTION_WRITES_PER_OBJECT * S3_PUT_CLASS
    )
    listing = listing_requests * S3_PUT_CLASS
    job = BATCH_OPERATIONS_PER_JOB if objects else 0.0
    return Estimate(
        objects=objects,
        batch_operations_job_usd=job,
        batch_operations_objects_usd=batch_objects,
        function_usd=function,
        function_s3_requests_usd=requests,
        listing_usd=listing,
        total_usd=job + batch_objects + function + requests + listing,
        prices_as_of=PRICE_DATE,
        function_cost_per_image_usd=per_image,
        function_cost_from=per_image_from,
    )
