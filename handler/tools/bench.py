"""`python -m handler bench`: the thesis's code path against this service's, in one run, on this machine.

Requests alternate thesis / fp32 / bf16, each on a different image, so neither noise nor a cache favours
one side. Prints medians, ratios, cold start, peak RSS, bf16 parity and the Lambda cost per million images.
"""

from __future__ import annotations

import io
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

# AWS Lambda on-demand prices, us-east-1, x86_64, as published on 2025-01-01 (unchanged through 2026).
PRICE_DATE = "2025-01-01"
PRICE_PER_GB_SECOND = 0.0000166667
PRICE_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_MEMORY_MB = 3538  # the memory at which Lambda gives 2 vCPUs, like this machine
BARE_SCRIPT = """
import io, sys, torch, transformers
from PIL import Image
d = sys.argv[1]
model = transformers.CLIPModel.from_pretrained(d).eval()
processor = transformers.CLIPProcessor.from_pretrained(d)
image = Image.open(io.BytesIO(open(sys.argv[2], 'rb').read())).convert('RGB').resize((224, 224))
with torch.no_grad():
    model(**processor(text=['nsfw', 'sfw'], images=image, return_tensors='pt', padding=True))
"""


def make_images(count: int, seed: int = 0, size: tuple[int, int] = (1024, 768)) -> list[bytes]:
    """Distinct photo-like JPEGs: smooth random colour fields with detail, about 100-200 kB each."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize(
            size, Image.Resampling.BICUBIC
        )
        detail = rng.normal(0, 12, (size[1], size[0], 3))
        pixels = np.clip(np.asarray(coarse, dtype=np.float64) + detail, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def ensure_checkpoint(work: Path, model_dir: Path | None) -> Path:
    """A baked model directory: the given one, or a random-weight ViT-B/32 made and baked once."""
    from handler.tools.bake import bake
    from handler.tools.random_checkpoint import make_random_checkpoint

    baked = work / "clip-base-baked"
    if (baked / "text_embeddings.safetensors").is_file():
        return baked
    source = model_dir or make_random_checkpoint(work / "clip-base", size="base")
    bake(baked, "random/clip-vit-base-patch32-sized", from_dir=source)
    return baked


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve(model_dir: Path, precision: str, first_image: bytes) -> Iterator[dict[str, Any]]:
    """Start `python -m handler serve`; yields its URL, cold start (s to the first answer) and pid."""
    port = _free_port()
    env = {**os.environ, "MODEL_DIR": str(model_dir), "PORT": str(port), "INFERENCE_PRECISION": precision}
    env["LOG_LEVEL"] = "WARNING"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "handler", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                response = _client().post(f"{url}/classify/", files={"image": ("a.jpg", first_image)})
                response.raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RuntimeError("the server exited during start-up") from None
                time.sleep(0.02)
        yield {"url": url, "cold_start_s": time.perf_counter() - started, "pid": process.pid}
    finally:
        process.terminate()
        process.wait(timeout=30)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def thesis_path(model_dir: Path) -> Callable[[bytes], Any]:
    """The thesis's per-request code: decode, resize to 224, processor(text+image), full model, softmax."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPProcessor.from_pretrained(model_dir)

    def classify(data: bytes) -> Any:
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224))
        with torch.no_grad():
            inputs = processor(text=["nsfw", "sfw"], images=image, return_tensors="pt", padding=True)
            return model(**inputs).logits_per_image.softmax(dim=1)

    return classify


def _ms(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _client() -> httpx.Client:
    """One keep-alive client for all requests, as a real caller would use: making an httpx.Client costs
    30-60 ms of TLS set-up on this machine, which would otherwise be billed to the service."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = httpx.Client(timeout=300)
    return _CLIENT


_CLIENT: httpx.Client | None = None


def _post_classify(url: str, data: bytes) -> None:
    _client().post(f"{url}/classify/", files={"image": ("a.jpg", data, "image/jpeg")}).raise_for_status()


def _post_batch(url: str, images: list[bytes]) -> None:
    files = [("images", (f"{i}.jpg", d, "image/jpeg")) for i, d in enumerate(images)]
    _client().post(f"{url}/v1/moderate/batch", files=files).raise_for_status()


def cost_per_million(ms_per_image: float, images_per_request: int) -> float:
    compute = ms_per_image / 1000 * LAMBDA_MEMORY_MB / 1024 * PRICE_PER_GB_SECOND * 1_000_000
    return compute + PRICE_PER_REQUEST * 1_000_000 / images_per_request


def run(work: Path, model_dir: Path | None, requests: int, batch: int, cold_runs: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    baked = ensure_checkpoint(work, model_dir)
    images = make_images(3 * requests + 2 * batch + 1)
    sample = work / "sample.jpg"
    sample.write_bytes(images[0])
    results: dict[str, Any] = {"model_dir": str(baked), "requests": requests, "batch": batch}

    cold: dict[str, list[float]] = {"bare": [], "fp32": []}
    for _ in range(cold_runs):  # alternate the bare script and the service
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", BARE_SCRIPT, str(baked), str(sample)], check=True, capture_output=True
        )
        cold["bare"].append(time.perf_counter() - started)
        with serve(baked, "fp32", images[0]) as server:
            cold["fp32"].append(server["cold_start_s"])
    results["cold_start_s"] = {k: statistics.median(v) for k, v in cold.items()}

    thesis = thesis_path(baked)
    single: dict[str, list[float]] = {"thesis": [], "fp32": [], "bf16": []}
    batches: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with serve(baked, "fp32", images[0]) as fp32, serve(baked, "bf16", images[0]) as bf16:
        for i in range(requests):
            single["thesis"].append(_ms(lambda i=i: thesis(images[1 + 3 * i])))  # type: ignore[misc]
            single["fp32"].append(_ms(lambda i=i: _post_classify(fp32["url"], images[2 + 3 * i])))  # type: ignore[misc]
            single["bf16"].append(_ms(lambda i=i: _post_classify(bf16["url"], images[3 + 3 * i])))  # type: ignore[misc]
        offset = 1 + 3 * requests
        for _ in range(3):
            for name, server in (("fp32", fp32), ("bf16", bf16)):
                chunk = (
                    images[offset : offset + batch]
                    if name == "fp32"
                    else images[offset + batch : offset + 2 * batch]
                )
                batches[name].append(batch / (_ms(lambda s=server, c=chunk: _post_batch(s["url"], c)) / 1000))  # type: ignore[misc]
        results["peak_rss_mib"] = {"fp32": peak_rss_mib(fp32["pid"]), "bf16": peak_rss_mib(bf16["pid"])}
        results["server_precision"] = {
            name: _client().get(f"{server['url']}/health").json()
            for name, server in (("fp32", fp32), ("bf16", bf16))
        }
    results["single_ms"] = {k: statistics.median(v) for k, v in single.items()}
    results["batch_images_per_s"] = {k: statistics.median(v) for k, v in batches.items()}
    results["sqs_images_per_s"] = {p: sqs_path_throughput(baked, p, images[:batch]) for p in ("fp32", "bf16")}
    results["parity_bf16"] = _parity(baked)
    results["cost_per_million_usd"] = {
        "thesis": cost_per_million(results["single_ms"]["thesis"], 1),
        "single_fp32": cost_per_million(results["single_ms"]["fp32"], 1),
        "single_bf16": cost_per_million(results["single_ms"]["bf16"], 1),
        "batch_bf16": cost_per_million(1000 / results["batch_images_per_s"]["bf16"], batch),
    }
    return results


def sqs_path_throughput(model_dir: Path, precision: str, images: list[bytes], per_batch: int = 10) -> float:
    """Images/s through the Lambda's SQS(S3) path: HeadObject, GetObject, one forward pass, tags (moto)."""
    import socket
    import uuid

    import boto3
    from moto.server import ThreadedMotoServer

    from handler.core.moderator import build_moderator
    from handler.s3.entry import handle_s3_event
    from handler.s3.events import EventKind
    from handler.settings import Settings

    mod = build_moderator(Settings(model_dir=model_dir, inference_precision=precision))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        keys = [f"upload/{i}.jpg" for i in range(len(images))]
        for key, data in zip(keys, images, strict=True):
            s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg")
        events = [_sqs_event(bucket, keys[i : i + per_batch]) for i in range(0, len(keys), per_batch)]
        handle_s3_event(_sqs_event(bucket, keys[:1]), EventKind.sqs, client=s3, moderator=mod)  # warm-up
        started = time.perf_counter()
        for event in events:
            handle_s3_event(event, EventKind.sqs, client=s3, moderator=mod)
        return len(keys) / (time.perf_counter() - started)
    finally:
        server.stop()


def _sqs_event(bucket: str, keys: list[str]) -> dict[str, Any]:
    def record(key: str) -> dict[str, Any]:
        s3_record = {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
        }
        return {"messageId": key, "eventSource": "aws:sqs", "body": json.dumps({"Records": [s3_record]})}

    return {"Records": [record(k) for k in keys]}


def _parity(model_dir: Path) -> dict[str, Any]:
    from handler.core.cpu import cpu_has_native_bf16
    from handler.core.model import Precision
    from handler.core.policy import default_policy
    from handler.tools.parity import compare, load_pair

    if not cpu_has_native_bf16():
        return {"skipped": "this CPU has no native bf16; the fast path falls back to fp32"}
    reference, fast = load_pair(model_dir, Precision.bf16)
    pictures = [Image.open(io.BytesIO(d)).convert("RGB") for d in make_images(100, seed=1, size=(320, 240))]
    return compare(reference, fast, pictures, ["nsfw", "sfw"], default_policy()).as_dict()


def format_table(r: dict[str, Any]) -> str:
    single, cold, batch, cost = (
        r["single_ms"],
        r["cold_start_s"],
        r["batch_images_per_s"],
        r["cost_per_million_usd"],
    )
    rows = [
        "| measure | thesis | fp32 | bf16 | ratio (thesis / best) |",
        "|---|---|---|---|---|",
        f"| one 1024x768 JPEG, 2 classes, ms (median of {r['requests']}) | {single['thesis']:.1f} | "
        f"{single['fp32']:.1f} | {single['bf16']:.1f} | {single['thesis'] / min(single['fp32'], single['bf16']):.1f}x |",
        f"| batch of {r['batch']} over HTTP, images/s | {1000 / single['thesis']:.1f} | {batch['fp32']:.1f} | "
        f"{batch['bf16']:.1f} | {max(batch.values()) / (1000 / single['thesis']):.1f}x |",
        f"| S3/SQS path (moto), 10 objects per SQS batch, images/s | | {r['sqs_images_per_s']['fp32']:.1f} | "
        f"{r['sqs_images_per_s']['bf16']:.1f} | |",
        f"| cold start to first answer, s | {cold['bare']:.2f} (bare script) | {cold['fp32']:.2f} | | "
        f"{cold['bare'] / cold['fp32']:.2f}x |",
        f"| peak RSS while serving, MiB | | {r['peak_rss_mib']['fp32']:.0f} | {r['peak_rss_mib']['bf16']:.0f} | |",
        f"| Lambda cost per million images, USD ({LAMBDA_MEMORY_MB} MB, prices of {PRICE_DATE}) | "
        f"{cost['thesis']:.2f} | {cost['single_fp32']:.2f} | {cost['single_bf16']:.2f} (batched: "
        f"{cost['batch_bf16']:.2f}) | {cost['thesis'] / cost['batch_bf16']:.1f}x |",
    ]
    return "\n".join(rows) + "\n\nbf16 parity on 100 images: " + json.dumps(r["parity_bf16"])
