"""`handler.main.handler` routes every event shape the deployment sends (real sample events, moto S3)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from handler.core.moderator import Moderator
from handler.s3.entry import handle_sqs
from handler.s3.events import s3_notification_refs
from handler.s3.tags import POLICY, VERDICT
from tests.conftest import api_verdict, image_bytes
from tests.event_loader import encode_key, http_event, load_event, sqs_event
from tests.s3_doubles import UPLOADS, S3Proxy, make_buckets, tags_of

KEY = "holiday photos/a+b é.jpg"  # a space (+ in events), a literal + (%2B) and unicode (%C3%A9)


@pytest.fixture
def main(moderator: Moderator) -> ModuleType:
    """The entry module, imported once the tiny model is configured (it loads the model at import)."""
    import handler.main

    return handler.main


@pytest.fixture
def uploaded(s3: Any) -> str:
    make_buckets(s3)
    return str(s3.put_object(Bucket=UPLOADS, Key=KEY, Body=image_bytes())["VersionId"])


@pytest.mark.parametrize("name", ["apigw_rest_v1_classify", "http_api_v2_classify", "function_url_classify"])
def test_http_events_reach_the_app_through_mangum(main: ModuleType, name: str) -> None:
    event = http_event(name, image_bytes())
    assert main.route_name(event) == "http"

    response = main.handler(event, None)

    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    assert set(body) == {"result"}
    assert set(body["result"]) == {"prediction", "label_probabilities", "original_payload"}
    assert set(body["result"]["label_probabilities"]) == {"nsfw", "sfw"}
    probabilities = body["result"]["label_probabilities"]
    assert body["result"]["prediction"] == max(probabilities, key=probabilities.get)
    assert body["result"]["original_payload"] == {"location": None, "classifier": "clip"}


def test_http_bad_input_is_a_4xx_not_an_exception(main: ModuleType) -> None:
    response = main.handler(http_event("apigw_rest_v1_classify", image_bytes(), classes="only-one"), None)

    assert response["statusCode"] == 400
    assert "classes" in json.loads(response["body"])["detail"]


def test_s3_notification_with_an_encoded_key(
    main: ModuleType, s3: Any, uploaded: str, client: TestClient
) -> None:
    event = load_event("s3_put", bucket=UPLOADS, key=encode_key(KEY), version_id=uploaded)
    assert event["Records"][0]["s3"]["object"]["key"] == "holiday+photos/a%2Bb+%C3%A9.jpg"

    response = main.handler(event, None)

    [summary] = response["objects"]
    assert summary["key"] == KEY
    assert summary["version"] == uploaded
    tags = tags_of(s3, UPLOADS, KEY, uploaded)
    assert tags[VERDICT] == summary["verdict"] == api_verdict(client, image_bytes()), "S3 and API agree"
    assert tags[POLICY].startswith("default@")


def test_sqs_wrapped_s3_notification(main: ModuleType, s3: Any, uploaded: str) -> None:
    event = load_event("sqs_s3_put", bucket=UPLOADS, key=encode_key(KEY), version_id=uploaded)

    assert main.handler(event, None) == {"batchItemFailures": []}
    assert VERDICT in tags_of(s3, UPLOADS, KEY, uploaded)


def test_eventbridge_object_created(main: ModuleType, s3: Any, uploaded: str) -> None:
    event = load_event("eventbridge_object_created", bucket=UPLOADS, key=encode_key(KEY), version_id=uploaded)

    [summary] = main.handler(event, None)["objects"]

    assert summary["key"] == KEY
    assert VERDICT in tags_of(s3, UPLOADS, KEY, uploaded)


def test_eventbridge_other_detail_types_are_ignored(main: ModuleType, s3: Any) -> None:
    event = load_event("eventbridge_object_created")
    event["detail-type"] = "Object Deleted"

    assert main.handler(event, None) == {"objects": []}


@pytest.mark.parametrize(
    ("name", "key_in_event"),
    [("batch_ops_v1", encode_key(KEY)), ("batch_ops_v2", KEY)],  # 1.0 URL-encodes keys; 2.0 does not
)
def test_batch_operations(main: ModuleType, s3: Any, uploaded: str, name: str, key_in_event: str) -> None:
    event = load_event(name, bucket=UPLOADS, key=key_in_event, version_id=uploaded)

    response = main.handler(event, None)

    assert response["invocationSchemaVersion"] == event["invocationSchemaVersion"]
    assert response["treatMissingKeysAs"] == "PermanentFailure"
    assert response["invocationId"] == event["invocationId"]
    [result] = response["results"]
    assert result["taskId"] == event["tasks"][0]["taskId"]
    assert result["resultCode"] == "Succeeded", result
    assert "verdict=" in result["resultString"]
    assert VERDICT in tags_of(s3, UPLOADS, KEY, uploaded)


def test_batch_operations_on_a_deleted_object_succeed(main: ModuleType, s3: Any) -> None:
    make_buckets(s3)
    event = load_event("batch_ops_v2", bucket=UPLOADS, key="deleted.jpg", version_id=None)

    [result] = main.handler(event, None)["results"]

    assert result["resultCode"] == "Succeeded"
    assert "object no longer exists" in result["resultString"]


@pytest.mark.parametrize("name", ["s3_test_event", "sqs_s3_test_event"])
def test_s3_test_events_are_acknowledged_and_ignored(main: ModuleType, s3: Any, name: str) -> None:
    event = load_event(name, bucket="no-such-bucket")  # nothing may be read: the bucket does not exist

    response = main.handler(event, None)

    assert response in ({"objects": []}, {"batchItemFailures": []})


def test_unknown_events_are_a_logged_clear_error(main: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="handler"),
        pytest.raises(ValueError, match="keys seen") as raised,
    ):
        main.handler({"detail": {}, "foo": 1}, None)

    assert "'detail'" in str(raised.value)
    assert "'foo'" in str(raised.value)
    assert "invocation failed" in caplog.text


def test_only_object_created_records_are_moderated() -> None:
    event = load_event("s3_put", key=encode_key(KEY))
    removed = json.loads(json.dumps(event["Records"][0]))
    removed["eventName"] = "ObjectRemoved:Delete"
    event["Records"].append(removed)

    assert [ref.key for ref in s3_notification_refs(event)] == [KEY]


def test_each_object_of_an_sqs_batch_is_judged_in_a_forward_pass_of_its_own(
    s3: Any, make_moderator: Callable[..., Moderator], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_buckets(s3)
    mod = make_moderator()
    passes: list[int] = []
    embed = mod.embed_pixels
    monkeypatch.setattr(mod, "embed_pixels", lambda pixels: passes.append(len(pixels)) or embed(pixels))
    bodies = []
    for i in range(4):
        key = f"batch/{i} of 4.jpg"
        version = s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes(color=(i * 60, 10, 10)))[
            "VersionId"
        ]
        bodies.append(load_event("s3_put", bucket=UPLOADS, key=encode_key(key), version_id=version))
    bodies.append(load_event("s3_test_event", bucket=UPLOADS))
    proxy = S3Proxy(s3)

    response = handle_sqs(sqs_event(*bodies), client=proxy, moderator=mod)

    assert response == {"batchItemFailures": []}
    assert passes == [1, 1, 1, 1]  # no upload shares a pass with another's (the test event: none)
    assert len(proxy.called("put_object_tagging")) == 4


def test_sqs_message_from_an_sns_fan_out(main: ModuleType, s3: Any, uploaded: str) -> None:
    notification = load_event("s3_put", bucket=UPLOADS, key=encode_key(KEY), version_id=uploaded)
    envelope = {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads"}
    event = sqs_event({**envelope, "Message": json.dumps(notification)})

    assert main.handler(event, None) == {"batchItemFailures": []}
    assert VERDICT in tags_of(s3, UPLOADS, KEY, uploaded)
