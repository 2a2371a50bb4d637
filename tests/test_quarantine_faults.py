"""Fault injection: S3 failing at each step of a quarantine never loses the object, and a retry finishes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from handler.core.moderator import Moderator
from handler.decisions.record import Quarantined
from handler.s3.entry import S3ModerationFailed, handle_batch, handle_notification, handle_sqs
from handler.s3.events import ObjectRef
from handler.s3.faults import is_gone, is_transient
from handler.s3.moderation import Outcome, moderate_objects
from handler.s3.quarantine import QuarantineVerifyError, verify_copy
from handler.s3.tags import POLICY, VERDICT
from tests.conftest import image_bytes
from tests.event_loader import encode_key, load_event, sqs_event
from tests.s3_doubles import (
    QUARANTINE,
    UPLOADS,
    S3Proxy,
    exists,
    fail_on,
    make_buckets,
    quarantined_key,
    records_of,
    tags_of,
)

KEY = "folder/bad pic+1.jpg"


@pytest.fixture
def quarantining(forced: Callable[..., Moderator]) -> Moderator:
    return forced("quarantine")


@pytest.fixture
def counted(quarantining: Moderator, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the size of every forward pass the moderator makes."""
    passes: list[int] = []
    embed = quarantining.embed_pixels
    monkeypatch.setattr(
        quarantining, "embed_pixels", lambda pixels: passes.append(len(pixels)) or embed(pixels)
    )
    return passes


def s3_event(key: str, version: str | None) -> dict[str, Any]:
    return load_event("s3_put", bucket=UPLOADS, key=encode_key(key), version_id=version)


FAULTS = {
    "tagging": fail_on("put_object_tagging"),
    "copy": fail_on("copy_object"),
    "verify": fail_on("head_object", Bucket=QUARANTINE),
    "delete": fail_on("delete_object"),
}


@pytest.mark.parametrize("step", list(FAULTS))
def test_fault_at_each_step_keeps_the_object_and_a_retry_finishes(
    s3: Any, dynamodb: Any, quarantining: Moderator, counted: list[int], step: str
) -> None:
    make_buckets(s3)
    body = image_bytes()
    version = str(s3.put_object(Bucket=UPLOADS, Key=KEY, Body=body, Tagging="owner=alice")["VersionId"])
    event = s3_event(KEY, version)
    faulty = S3Proxy(s3, FAULTS[step])

    with pytest.raises(S3ModerationFailed) as raised:
        handle_notification(event, client=faulty, moderator=quarantining)

    assert isinstance(raised.value.__cause__, ClientError)
    assert is_transient(raised.value.__cause__)
    assert exists(s3, UPLOADS, KEY, version)  # every injected fault comes before (or is) the delete
    if step != "tagging":  # the verdict was written before the copy
        assert tags_of(s3, UPLOADS, KEY, version)[VERDICT] == "quarantine"

    retry = handle_notification(event, client=s3, moderator=quarantining)

    assert retry["objects"][0]["outcome"] == "quarantined"
    assert counted == [1]  # the verdict was recorded before any action: the retry resumes, never re-judges
    assert not exists(s3, UPLOADS, KEY, version)
    where = quarantined_key(KEY, version)
    copy = s3.get_object(Bucket=QUARANTINE, Key=where)
    assert copy["Body"].read() == body
    [record] = records_of(dynamodb, KEY)
    assert (record.verdict, record.state) == ("quarantine", "done")
    assert record.quarantine == Quarantined(QUARANTINE, where, copy["VersionId"])
    tags = tags_of(s3, QUARANTINE, where)
    assert tags["owner"] == "alice"
    assert tags[VERDICT] == "quarantine"
    assert tags[POLICY] == quarantining.policies.default.policy_id

    again = handle_notification(event, client=s3, moderator=quarantining)  # a third delivery
    assert again["objects"][0]["outcome"] == "in_quarantine"


def test_crash_after_delete_then_retry_is_a_success(s3: Any, quarantining: Moderator) -> None:
    """The delete went through but the answer was lost: the retry finds the object in quarantine."""
    make_buckets(s3)
    version = str(s3.put_object(Bucket=UPLOADS, Key=KEY, Body=image_bytes())["VersionId"])

    class LosesTheDeleteAnswer(S3Proxy):
        def __getattr__(self, name: str) -> Any:
            method = super().__getattr__(name)
            if name != "delete_object":
                return method

            def delete(**kwargs: Any) -> Any:
                method(**kwargs)
                raise EndpointConnectionError(endpoint_url="http://s3.invalid")

            return delete

    lost_answer = LosesTheDeleteAnswer(s3)
    [first] = moderate_objects([ObjectRef(UPLOADS, KEY, version)], client=lost_answer, moderator=quarantining)
    assert not first.ok
    assert first.error is not None
    assert is_transient(first.error)

    [retry] = moderate_objects([ObjectRef(UPLOADS, KEY, version)], client=s3, moderator=quarantining)
    assert retry.ok
    assert retry.outcome is Outcome.in_quarantine
    assert exists(s3, QUARANTINE, quarantined_key(KEY, version))


def test_copy_that_does_not_match_is_not_followed_by_a_delete(s3: Any, quarantining: Moderator) -> None:
    make_buckets(s3)
    version = str(s3.put_object(Bucket=UPLOADS, Key=KEY, Body=image_bytes())["VersionId"])

    class Corrupting(S3Proxy):
        def __getattr__(self, name: str) -> Any:
            method = super().__getattr__(name)
            if name != "head_object":
                return method

            def head(**kwargs: Any) -> Any:
                response = method(**kwargs)
                return (
                    {**response, "ContentLength": response["ContentLength"] + 1}
                    if kwargs["Bucket"] == QUARANTINE
                    else response
                )

            return head

    proxy = Corrupting(s3)
    [result] = moderate_objects([ObjectRef(UPLOADS, KEY, version)], client=proxy, moderator=quarantining)

    assert isinstance(result.error, QuarantineVerifyError)
    assert is_transient(result.error)
    assert not proxy.called("delete_object")
    assert exists(s3, UPLOADS, KEY, version)


def test_sqs_reports_only_the_failed_message_and_its_retry_succeeds(s3: Any, quarantining: Moderator) -> None:
    make_buckets(s3)
    versions = {
        k: str(s3.put_object(Bucket=UPLOADS, Key=k, Body=image_bytes())["VersionId"])
        for k in ("a.jpg", "b c.jpg")
    }
    bodies = [s3_event(k, v) for k, v in versions.items()]
    event = sqs_event(*bodies, ids=["msg-a", "msg-b"])
    faulty = S3Proxy(s3, fail_on("copy_object", Key=quarantined_key("b c.jpg", versions["b c.jpg"])))

    response = handle_sqs(event, client=faulty, moderator=quarantining)

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-b"}]}
    assert exists(s3, QUARANTINE, quarantined_key("a.jpg", versions["a.jpg"]))
    assert not exists(s3, UPLOADS, "a.jpg", versions["a.jpg"])
    assert exists(s3, UPLOADS, "b c.jpg", versions["b c.jpg"])

    redelivery = sqs_event(bodies[1], ids=["msg-b"])
    assert handle_sqs(redelivery, client=s3, moderator=quarantining) == {"batchItemFailures": []}
    assert exists(s3, QUARANTINE, quarantined_key("b c.jpg", versions["b c.jpg"]))
    assert not exists(s3, UPLOADS, "b c.jpg", versions["b c.jpg"])


def test_sqs_message_that_is_not_an_s3_notification_is_reported(s3: Any, quarantining: Moderator) -> None:
    event = sqs_event({"hello": "world"}, ids=["odd"])
    event["Records"].append({**event["Records"][0], "messageId": "not-json", "body": "{oops"})

    response = handle_sqs(event, client=s3, moderator=quarantining)

    assert response == {"batchItemFailures": [{"itemIdentifier": "odd"}, {"itemIdentifier": "not-json"}]}


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [("SlowDown", 503, "TemporaryFailure"), ("AccessDenied", 403, "PermanentFailure")],
)
def test_batch_operations_report_a_result_per_task(
    s3: Any, quarantining: Moderator, code: str, status: int, expected: str
) -> None:
    make_buckets(s3)
    ok_version = str(s3.put_object(Bucket=UPLOADS, Key="ok.jpg", Body=image_bytes())["VersionId"])
    bad_version = str(s3.put_object(Bucket=UPLOADS, Key="bad.jpg", Body=image_bytes())["VersionId"])
    event = load_event("batch_ops_v2", bucket=UPLOADS, key="ok.jpg", version_id=ok_version)
    event["tasks"].append(
        {**event["tasks"][0], "taskId": "task-2", "s3Key": "bad.jpg", "s3VersionId": bad_version}
    )
    faulty = S3Proxy(s3, fail_on("head_object", Key="bad.jpg"), code=code, status=status)

    response = handle_batch(event, client=faulty, moderator=quarantining)

    assert response["invocationSchemaVersion"] == "2.0"
    assert response["treatMissingKeysAs"] == "PermanentFailure"
    assert response["invocationId"] == event["invocationId"]
    [ok, bad] = response["results"]
    assert ok["taskId"] == event["tasks"][0]["taskId"]
    assert ok["resultCode"] == "Succeeded"
    assert "quarantined" in ok["resultString"]
    assert bad["taskId"] == "task-2"
    assert bad["resultCode"] == expected
    assert code in bad["resultString"]
    assert exists(s3, UPLOADS, "bad.jpg", bad_version)


def test_model_failure_fails_every_waiting_object_and_keeps_them(
    s3: Any, quarantining: Moderator, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_buckets(s3)
    version = str(s3.put_object(Bucket=UPLOADS, Key="a.jpg", Body=image_bytes())["VersionId"])

    def broken(images: Any) -> Any:
        raise RuntimeError("CUDA fell over")

    monkeypatch.setattr(quarantining, "embed_pixels", broken)
    [result] = moderate_objects([ObjectRef(UPLOADS, "a.jpg", version)], client=s3, moderator=quarantining)

    assert result.outcome is Outcome.failed
    assert "CUDA" in str(result.detail)
    assert exists(s3, UPLOADS, "a.jpg", version)
    assert not tags_of(s3, UPLOADS, "a.jpg", version)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "HeadObject"
    )


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_client_error("SlowDown", 503), True),
        (_client_error("ServiceUnavailable", 503), True),
        (_client_error("InternalError", 500), True),
        (_client_error("RequestTimeout", 400), True),
        (_client_error("Throttling", 400), True),
        (_client_error("Whatever", 502), True),
        (EndpointConnectionError(endpoint_url="http://s3.invalid"), True),
        (ReadTimeoutError(endpoint_url="http://s3.invalid"), True),
        (_client_error("AccessDenied", 403), False),
        (_client_error("NoSuchKey", 404), False),
        (ValueError("a bug"), False),
    ],
)
def test_infrastructure_faults_are_told_apart(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_gone_codes() -> None:
    assert is_gone(_client_error("404", 404))
    assert is_gone(_client_error("NoSuchVersion", 404))
    assert is_gone(_client_error("405", 405))  # a version id that names a delete marker
    assert not is_gone(_client_error("SlowDown", 503))


@pytest.mark.parametrize(
    ("source", "copy", "ok"),
    [
        ({"ContentLength": 5, "ETag": '"abc"'}, {"ContentLength": 5, "ETag": '"abc"'}, True),
        ({"ContentLength": 5, "ETag": '"abc"'}, {"ContentLength": 5, "ETag": '"abd"'}, False),
        ({"ContentLength": 5, "ETag": '"abc"'}, {"ContentLength": 6, "ETag": '"abc"'}, False),
        # multipart source: its ETag is not the copy's; compare full-object checksums when both have one
        (
            {"ContentLength": 5, "ETag": '"abc-2"', "ChecksumCRC32": "AAA="},
            {"ContentLength": 5, "ETag": '"x"', "ChecksumCRC32": "AAA="},
            True,
        ),
        (
            {"ContentLength": 5, "ETag": '"abc-2"', "ChecksumCRC32": "AAA="},
            {"ContentLength": 5, "ETag": '"x"', "ChecksumCRC32": "BBB="},
            False,
        ),
        (
            {"ContentLength": 5, "ETag": '"abc-2"', "ChecksumCRC32": "AAA=-2"},
            {"ContentLength": 5, "ETag": '"x"', "ChecksumCRC32": "BBB="},
            True,
        ),
        ({"ContentLength": 5, "ETag": '"abc-2"'}, {"ContentLength": 5, "ETag": '"x"'}, True),
        ({"ContentLength": 5, "ETag": '"abc-2"'}, {"ContentLength": 4, "ETag": '"x"'}, False),
        # SSE-KMS ETags are not MD5s: size (and checksum) only
        (
            {"ContentLength": 5, "ETag": '"abc"', "ServerSideEncryption": "aws:kms"},
            {"ContentLength": 5, "ETag": '"x"'},
            True,
        ),
    ],
)
def test_copy_verification_rules(source: dict[str, Any], copy: dict[str, Any], ok: bool) -> None:
    if ok:
        verify_copy(source, copy)
    else:
        with pytest.raises(QuarantineVerifyError):
            verify_copy(source, copy)
