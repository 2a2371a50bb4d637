"""`python -m handler.backfill.bench [--objects 10000]`: a backfill dry run over many objects in moto.

Uploads N small objects to a versioned bucket on a local moto server, then runs the `backfill` command's
dry run over them and prints its JSON (objects, manifest bytes, listing and manifest-write seconds, the
cost estimate) with the upload time. moto answers from memory in this process: the listing time is
moto's, not S3's (S3 lists 1,000 versions a request at some tens of ms each).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from handler.backfill.cli import add_commands

BUCKET = "bench-uploads"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(objects: int, work: Path) -> dict[str, object]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = dict(os.environ)
    try:
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            keys = [f"photos/{i // 1000:03d}/image {i:06d}.jpg" for i in range(objects)]
            list(pool.map(lambda key: s3.put_object(Bucket=BUCKET, Key=key, Body=b"\xff\xd8\xff"), keys))
        uploaded_s = time.perf_counter() - started

        parser = argparse.ArgumentParser()
        add_commands(parser.add_subparsers())
        manifest = work / "manifest.csv"
        args = parser.parse_args(
            ["backfill", f"s3://{BUCKET}/photos/", "--dry-run", "--manifest-out", str(manifest)]
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            args.func(args)
        result: dict[str, object] = json.loads(out.getvalue())
        result["upload_s"] = round(uploaded_s, 1)
        return result
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handler.backfill.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--objects", type=int, default=10_000, help="objects to upload and list")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as work:
        print(json.dumps(run(args.objects, Path(work)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
