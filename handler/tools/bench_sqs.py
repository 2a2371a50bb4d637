"""The S3/SQS path's throughput: HeadObject, GetObject, one forward pass, tags, against moto in process."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any


def sqs_path_throughput(model_dir: Path, images: list[bytes], per_batch: int = 10) -> float:
    """Images/s through the Lambda's SQS(S3) path with the deployed defaults (INFERENCE_PRECISION=auto)."""
    import socket
    import uuid

    import boto3
    from moto.server import ThreadedMotoServer

    from handler.core.moderator import build_moderator
    from handler.s3.entry import handle_sqs
    from handler.settings import Settings

    mod = build_moderator(Settings(model_dir=model_dir))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    logging.getLogger("handler").setLevel(logging.WARNING)  # one JSON line per object is noise here
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
        handle_sqs(_sqs_event(bucket, keys[:1]), client=s3, moderator=mod)  # warm-up
        started = time.perf_counter()
        for event in events:
            handle_sqs(event, client=s3, moderator=mod)
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
