"""What operators see: EMF metrics, verdict events on EventBridge, request ids (through the Lambda entry)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from handler.core.moderator import Moderator
from tests.conftest import image_bytes
from tests.event_loader import encode_key, http_event, load_event
from tests.s3_doubles import UPLOADS, quarantined_key


def s3_put(s3: Any, key: str) -> dict[str, Any]:
    version = s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes())["VersionId"]
    return load_event("s3_put", bucket=UPLOADS, key=encode_key(key), version_id=version)


def emf_documents(text: str) -> list[dict[str, Any]]:
    """Every stdout line that is an EMF document, checked against the specification's required fields."""
    documents = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        if "_aws" not in doc:
            continue
        meta = doc["_aws"]
        assert isinstance(meta["Timestamp"], int)
        assert meta["Timestamp"] > 1_600_000_000_000  # milliseconds since the epoch
        for directive in meta["CloudWatchMetrics"]:
            assert isinstance(directive["Namespace"], str)
            assert directive["Namespace"]
            assert len(directive["Dimensions"]) >= 1
            for dimension_set in directive["Dimensions"]:
                assert len(dimension_set) <= 30
                for name in dimension_set:
                    assert isinstance(doc[name], str), f"dimension {name} must be a string property"
            for metric in directive["Metrics"]:
                assert isinstance(doc[metric["Name"]], int | float), metric
                assert metric["Unit"] in {"Count", "Milliseconds"}
        documents.append(doc)
    return documents


def test_s3_decisions_emit_valid_emf_metrics(
    s3: Any, deploy: Callable[..., ModuleType], capfd: pytest.CaptureFixture[str]
) -> None:
    main = deploy("quarantine", METRICS="on", METRICS_NAMESPACE="Test/Moderation")
    capfd.readouterr()

    main.handler(s3_put(s3, "a.jpg"), None)

    docs = emf_documents(capfd.readouterr().out)
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in docs} == {"Test/Moderation"}
    [objects] = [d for d in docs if "Objects" in d]
    assert (objects["Source"], objects["Verdict"], objects["Objects"]) == ("s3", "quarantine", 1)
    [flagged] = [d for d in docs if "Flagged" in d]
    assert (flagged["Category"], flagged["Flagged"]) == ("bad", 1)
    [timing] = [d for d in docs if "EndToEndMs" in d]
    assert timing["Source"] == "s3"
    assert timing["EndToEndMs"] > 0
    assert 0 < timing["ModelMs"] <= timing["EndToEndMs"]


def test_errors_are_counted_by_reason(
    s3: Any, deploy: Callable[..., ModuleType], capfd: pytest.CaptureFixture[str]
) -> None:
    main = deploy("allow", METRICS="on")
    version = s3.put_object(Bucket=UPLOADS, Key="notes.txt", Body=b"hello, not an image")["VersionId"]
    capfd.readouterr()

    main.handler(load_event("s3_put", bucket=UPLOADS, key="notes.txt", version_id=version), None)

    docs = emf_documents(capfd.readouterr().out)
    assert [(d["Reason"], d["Errors"]) for d in docs if "Errors" in d] == [("not_an_image", 1)]
    assert [d["Verdict"] for d in docs if "Objects" in d] == ["error"]


def test_no_metrics_outside_lambda_by_default(
    s3: Any,
    deploy: Callable[..., ModuleType],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    main = deploy("allow")
    capfd.readouterr()
    main.handler(s3_put(s3, "a.jpg"), None)
    assert emf_documents(capfd.readouterr().out) == []


@pytest.mark.parametrize(("verdict", "sent"), [("quarantine", True), ("review", True), ("allow", False)])
def test_review_and_quarantine_verdicts_raise_an_eventbridge_event(
    s3: Any, deploy: Callable[..., ModuleType], moto_server: str, verdict: str, sent: bool
) -> None:
    import boto3

    events = boto3.client("events", endpoint_url=moto_server)
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    queue = sqs.create_queue(QueueName="reviewers")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="flagged", EventPattern=json.dumps({"source": ["clip-moderation"]}))
    events.put_targets(Rule="flagged", Targets=[{"Id": "reviewers", "Arn": arn}])
    main = deploy(verdict, EVENT_BUS_NAME="default")
    event = s3_put(s3, "photos/a b.jpg")
    version = event["Records"][0]["s3"]["object"]["versionId"]

    main.handler(event, None)

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    if not sent:
        assert messages == []
        return
    [message] = messages
    body = json.loads(message["Body"])
    assert body["detail-type"] == "Moderation Verdict"
    detail = body["detail"]
    assert (detail["bucket"], detail["key"], detail["version"]) == (UPLOADS, "photos/a b.jpg", version)
    assert (detail["verdict"], detail["category"]) == (verdict, "bad")
    assert detail["policy"].startswith(f"forced-{verdict}@")
    if verdict == "quarantine":
        assert detail["quarantine"]["key"] == quarantined_key("photos/a b.jpg", version)
    else:
        assert detail["quarantine"] is None


def test_api_responses_carry_the_gateway_request_id(moderator: Moderator) -> None:
    import handler.main

    event = http_event("apigw_rest_v1_classify", image_bytes())

    response = handler.main.handler(event, None)

    headers = {k.lower(): v for k, v in response.get("multiValueHeaders", {}).items()}
    value = response.get("headers", {}).get("x-request-id") or headers.get("x-request-id", [None])[0]
    assert value == event["requestContext"]["requestId"]


def test_self_hosted_responses_get_a_new_request_id_that_the_log_line_carries(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="handler"):
        first = client.post("/v1/moderate", files={"image": ("a.jpg", image_bytes(), "image/jpeg")})
        second = client.get("/health")

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(len(i) == 32 for i in ids)
    assert ids[0] != ids[1]
    [line] = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "moderate"]
    assert line["request_id"] == ids[0]
