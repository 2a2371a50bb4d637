"""The S3/SQS path's throughput: HeadObject, the decision table's absence, tags, GetObject, forward passes,
tags again, through `handle_sqs` with SQS batches of the template's size, against moto.

moto runs in its own process (`python -m moto.server`), so its request handling takes none of this
process's GIL; it still shares the machine's cores, which real S3 does not. moto answers in about a
millisecond, S3 in tens: `s3_latency_ms` adds that wait to every S3 call (a botocore `before-send` hook
that sleeps, so the waiting thread holds no CPU, as on the network). The figure with latency is the one
that says how the flow's concurrency (S3_IO_WORKERS) serves a real bucket.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Objects per SQS batch: the template's BatchSize.
SQS_BATCH = 10


def sqs_path_throughput(
    model_dir: Path, images: list[bytes], latencies_ms: tuple[float, ...] = (0.0, 50.0)
) -> dict[str, float]:
    """Images/s through the Lambda's SQS(S3) path with the deployed defaults (INFERENCE_PRECISION=auto),
    for each added S3 latency: {"0ms": ..., "50ms": ...}."""
    import boto3
    from botocore.config import Config

    from handler.core.moderator import build_moderator
    from handler.s3.entry import handle_sqs
    from handler.settings import Settings

    mod = build_moderator(Settings(model_dir=model_dir))
    logging.getLogger("handler").setLevel(logging.WARNING)  # one JSON line per object is noise here
    rates: dict[str, float] = {}
    with _moto_server() as endpoint:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(max_pool_connections=2 * mod.settings.s3_io_workers),  # as get_s3_client's
        )
        for latency in latencies_ms:
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            s3.create_bucket(Bucket=bucket)
            keys = [f"upload/{i}.jpg" for i in range(len(images))]
            for key, data in zip(keys, images, strict=True):
                s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg")
            events = [_sqs_event(bucket, keys[i : i + SQS_BATCH]) for i in range(0, len(keys), SQS_BATCH)]
            handle_sqs(_sqs_event(bucket, keys[:1]), client=s3, moderator=mod)  # warm-up

            def wait(**_: Any) -> None:
                time.sleep(latency / 1000)  # noqa: B023 (registered and unregistered within the loop)

            s3.meta.events.register("before-send.s3.*", wait)
            try:
                started = time.perf_counter()
                for event in events:
                    handle_sqs(event, client=s3, moderator=mod)
                rates[f"{latency:g}ms"] = len(keys) / (time.perf_counter() - started)
            finally:
                s3.meta.events.unregister("before-send.s3.*", wait)
    return rates


@contextmanager
def _moto_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=30)


def _sqs_event(bucket: str, keys: list[str]) -> dict[str, Any]:
    def record(key: str) -> dict[str, Any]:
        s3_record = {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
        }
        return {"messageId": key, "eventSource": "aws:sqs", "body": json.dumps({"Records": [s3_record]})}

    return {"Records": [record(k) for k in keys]}
