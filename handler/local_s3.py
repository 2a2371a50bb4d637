"""`make s3-local` / `python -m handler.local_s3`: the whole S3 flow on this machine, no AWS account.

Starts a moto server, creates the upload and quarantine buckets, uploads sample images, a short video and
a text file (under keys that need URL-encoding), creates the decision table, hands `handler.main.handler`
the S3 notification AWS would send, and prints what it answered, the tags each upload got, the quarantine
bucket's contents and the decision table's records.

Random weights judge nothing, so unless `--policy` is given, a demo policy forces `--verdict` (quarantine
by default: every image and the video are copied to the quarantine bucket, verified, and deleted from
uploads; the text file is tagged `moderation-verdict=error`). Give `--model-dir` and `--policy` to watch
a real checkpoint and your own rules instead.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

UPLOADS, QUARANTINE, PREFIX, TABLE = "local-uploads", "local-quarantine", "quarantine/", "local-decisions"


def _image(fmt: str, color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(buffer, format=fmt)
    return buffer.getvalue()


def _video(path: Path) -> bytes:
    """Two seconds of solid colour, H.264 where PyAV has it, else MPEG-4 Part 2."""
    import av
    import numpy as np

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=10)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for index in range(20):
            pixels = np.full((120, 160, 3), (30, 30 + index * 10, 200), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.read_bytes()


def samples(work: Path) -> dict[str, tuple[bytes, str]]:
    """key -> (body, content type): what a user might upload, keys with spaces and a plus sign included."""
    return {
        "photos/beach + sun.jpg": (_image("JPEG", (230, 190, 60)), "image/jpeg"),
        "photos/night sky.png": (_image("PNG", (10, 20, 60)), "image/png"),
        "clips/wave.mp4": (_video(work / "wave.mp4"), "video/mp4"),
        "docs/notes.txt": (b"not an image at all\n", "text/plain"),
    }


def demo_policy(work: Path, verdict: str) -> Path:
    """A policy whose `demo` category is flagged at any score (threshold 0) with action `verdict`."""
    policy = {
        "name": f"local-demo-{verdict}",
        "description": "make s3-local: forces a verdict, since random weights judge nothing",
        "categories": [
            {"name": "demo", "prompts": ["a photo"], "threshold": 0.0, "action": verdict},
            {"name": "safe", "prompts": ["an ordinary photo"], "safe": True},
        ],
    }
    path = work / "demo-policy.json"
    path.write_text(json.dumps(policy))
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def notification(uploaded: dict[str, str | None]) -> dict[str, Any]:
    """The S3 event notification AWS sends for these puts (keys URL-encoded, as S3 writes them)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": UPLOADS, "arn": f"arn:aws:s3:::{UPLOADS}"},
                    "object": {"key": quote_plus(key), **({"versionId": version} if version else {})},
                },
            }
            for key, version in uploaded.items()
        ]
    }


def _tags(s3: Any, bucket: str, key: str, version: str | None = None) -> dict[str, str]:
    extra = {"VersionId": version} if version else {}
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **extra)["TagSet"]}


def decisions(uploaded: dict[str, str | None]) -> list[str]:
    from handler.decisions.table import get_decision_table

    table = get_decision_table()
    assert table is not None  # DECISION_TABLE is set in run()
    lines = ["", f"decision table {TABLE}:"]
    for key in uploaded:
        for record in table.history(UPLOADS, key):
            where = f", quarantine copy {record.quarantine}" if record.quarantine else ""
            why = f", reason {record.reason}" if record.reason else ""
            lines.append(f"  {key}: {record.verdict} ({record.state}) by {record.policy}{where}{why}")
    return lines


def report(s3: Any, uploaded: dict[str, str | None], answer: dict[str, Any]) -> list[str]:
    lines = [f"handler answered: {json.dumps(answer)}", "", f"s3://{UPLOADS}:"]
    for key, version in uploaded.items():
        versions = s3.list_object_versions(Bucket=UPLOADS, Prefix=key).get("Versions", [])
        if not any(v["Key"] == key and v["VersionId"] == (version or "null") for v in versions):
            lines.append(f"  {key}: gone (moved to quarantine)")
            continue
        tags = _tags(s3, UPLOADS, key, version)
        lines.append(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items())))
    lines += ["", f"s3://{QUARANTINE}:"]
    held = s3.list_objects_v2(Bucket=QUARANTINE).get("Contents", [])
    for item in held:
        tags = _tags(s3, QUARANTINE, item["Key"])
        size = item["Size"]
        lines.append(
            f"  {item['Key']} ({size} bytes): " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
        )
    if not held:
        lines.append("  (empty)")
    return lines


def run(work: Path, verdict: str, policy: Path | None, model_dir: Path | None) -> list[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's one line per request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        if model_dir is None:
            from handler.tools.random_checkpoint import make_random_checkpoint

            model_dir = make_random_checkpoint(work / "model", size="tiny")
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_DEFAULT_REGION="us-east-1",
            MODEL_DIR=str(model_dir),
            MODERATION_POLICY=str(policy or demo_policy(work, verdict)),
            QUARANTINE_BUCKET=QUARANTINE,
            QUARANTINE_PREFIX=PREFIX,
            DECISION_TABLE=TABLE,
        )
        os.environ.pop("AWS_PROFILE", None)
        from handler.decisions.table import table_definition

        boto3.client("dynamodb").create_table(**table_definition(TABLE))
        s3 = boto3.client("s3")
        for bucket in (UPLOADS, QUARANTINE):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        uploaded: dict[str, str | None] = {}
        for key, (body, content_type) in samples(work).items():
            put = s3.put_object(Bucket=UPLOADS, Key=key, Body=body, ContentType=content_type)
            uploaded[key] = put.get("VersionId")

        from handler.main import handler  # loads the model now that MODEL_DIR and the policy are set

        answer = handler(notification(uploaded), None)
        return report(s3, uploaded, answer) + decisions(uploaded)
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handler.local_s3", description=__doc__.split("\n")[0])
    parser.add_argument("--verdict", choices=("quarantine", "review", "allow"), default="quarantine")
    parser.add_argument("--policy", type=Path, default=None, help="your policy file (overrides --verdict)")
    parser.add_argument("--model-dir", type=Path, default=None, help="a checkpoint (default: random weights)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3-local-") as work:
        print("\n".join(run(Path(work), args.verdict, args.policy, args.model_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
