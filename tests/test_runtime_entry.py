"""The container's real entry, `python -m awslambdaric handler.main.handler`, against a local Runtime API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import api_verdict, image_bytes
from tests.event_loader import encode_key, http_event, load_event
from tests.fake_runtime_api import FakeRuntimeApi
from tests.s3_doubles import UPLOADS, make_buckets, tags_of

ROOT = Path(__file__).resolve().parents[1]
KEY = "from the runtime/a+b.jpg"
TIMEOUT_S = 90.0


@pytest.fixture
def runtime(tiny_model_dir: Path, moto_server: str, tmp_path: Path) -> Iterator[tuple[FakeRuntimeApi, Path]]:
    """The Runtime API in a thread, and awslambdaric in a subprocess polling it."""
    log = tmp_path / "runtime.log"
    with FakeRuntimeApi() as api, log.open("wb") as out:
        env = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "MODEL_DIR": str(tiny_model_dir),
            "AWS_ENDPOINT_URL": moto_server,
            "PYTHONPATH": str(ROOT),
            "AWS_LAMBDA_FUNCTION_NAME": "moderation",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", "handler.main.handler"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield api, log
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def answer(api: FakeRuntimeApi, log: Path, event: dict[str, Any]) -> Any:
    request_id = api.invoke(event)
    try:
        kind, body = api.result(request_id, TIMEOUT_S)
    except TimeoutError:
        pytest.fail(f"the runtime did not answer; its output:\n{log.read_text(errors='replace')[-4000:]}")
    assert kind == "response", (body, log.read_text(errors="replace")[-4000:])
    return body


@pytest.mark.slow
def test_awslambdaric_serves_http_and_s3_events(
    runtime: tuple[FakeRuntimeApi, Path], s3: Any, client: TestClient
) -> None:
    api, log = runtime
    make_buckets(s3)
    version = str(s3.put_object(Bucket=UPLOADS, Key=KEY, Body=image_bytes())["VersionId"])

    http = answer(api, log, http_event("apigw_rest_v1_classify", image_bytes()))
    assert http["statusCode"] == 200, http
    assert set(json.loads(http["body"])["result"]) == {
        "prediction",
        "label_probabilities",
        "original_payload",
    }

    s3_answer = answer(
        api, log, load_event("s3_put", bucket=UPLOADS, key=encode_key(KEY), version_id=version)
    )
    assert s3_answer["objects"][0]["key"] == KEY
    verdict = tags_of(s3, UPLOADS, KEY, version)["moderation-verdict"]
    assert verdict == api_verdict(client, image_bytes()), "the runtime's process judges as the API does"

    request_id = api.invoke({"unexpected": True})
    kind, error = api.result(request_id, TIMEOUT_S)
    assert kind == "error"
    assert error["errorType"] == "UnsupportedEvent"
    assert "keys seen" in error["errorMessage"]
