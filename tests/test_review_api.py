"""The review routes against moto (server mode: S3 + DynamoDB), on records the S3 flow itself wrote."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

from handler.core.moderator import Moderator
from handler.feedback import read_feedback
from handler.s3.events import ObjectRef
from handler.s3.moderation import moderate_objects
from handler.s3.tags import VERDICT
from tests.conftest import image_bytes
from tests.event_loader import load_event
from tests.s3_doubles import (
    QUARANTINE,
    TABLE,
    UPLOADS,
    S3Proxy,
    exists,
    fail_on,
    make_buckets,
    quarantined_key,
    records_of,
    tags_of,
)

QUEUE = "/v1/review/queue"
DECIDE = "/v1/review/decision"


@pytest.fixture
def served(
    s3: Any,
    tmp_path: Path,
    forced: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
) -> Moderator:
    """The app and the S3 flow with a policy that sends everything to review, recording in the table."""
    mod = forced("review", feedback_dir=tmp_path / "feedback")
    override_moderator(mod)
    return mod


def upload_and_judge(s3: Any, mod: Moderator, key: str, body: bytes | None = None) -> ObjectRef:
    """An upload, judged by the S3 flow as its event would have it judged."""
    put = s3.put_object(Bucket=UPLOADS, Key=key, Body=body or image_bytes(), ContentType="image/jpeg")
    ref = ObjectRef(UPLOADS, key, put.get("VersionId"))
    [result] = moderate_objects([ref], client=s3, moderator=mod)
    assert result.verdict == "review", result
    return ref


def queue(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get(QUEUE, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decision(item: dict[str, Any], verdict: str, **extra: Any) -> dict[str, Any]:
    fields = ("bucket", "key", "version", "judged_by")
    return {**{name: item[name] for name in fields}, "decision": verdict, **extra}


@pytest.fixture
def one_queued(s3: Any, served: Moderator, client: TestClient) -> dict[str, Any]:
    make_buckets(s3)
    upload_and_judge(s3, served, "photos/cat one.jpg")
    [item] = queue(client)["items"]
    return item


def test_the_queue_lists_review_verdicts_newest_first_in_pages(
    s3: Any, served: Moderator, client: TestClient
) -> None:
    make_buckets(s3)
    bodies = {key: image_bytes(color=(10 * i, 40, 90)) for i, key in enumerate(["a.jpg", "b.jpg", "c.jpg"])}
    refs = {key: upload_and_judge(s3, served, key, body) for key, body in bodies.items()}

    first = queue(client, limit=2)
    assert [item["key"] for item in first["items"]] == ["c.jpg", "b.jpg"]
    assert first["next_cursor"]
    second = queue(client, limit=2, cursor=first["next_cursor"])
    assert [item["key"] for item in second["items"]] == ["a.jpg"]
    assert second["next_cursor"] is None

    item = first["items"][0]
    assert (item["bucket"], item["version_id"], item["verdict"]) == (
        UPLOADS,
        refs["c.jpg"].version_id,
        "review",
    )
    assert item["flagged"] == ["bad"]
    assert set(item["scores"]) == {"bad", "meh", "fine"}
    assert item["policy"] == served.policies.default.policy_id
    assert item["review"] == {}
    thumbnail = httpx.get(item["thumbnail_url"], timeout=10)  # presigned: no credentials needed
    assert thumbnail.status_code == 200
    assert thumbnail.content == bodies["c.jpg"]
    assert thumbnail.headers["cache-control"] == "no-store"  # the browser keeps no copy either


def test_allow_tags_the_version_records_the_reviewer_and_writes_feedback(
    s3: Any, dynamodb: Any, served: Moderator, client: TestClient, one_queued: dict[str, Any], tmp_path: Path
) -> None:
    response = client.post(DECIDE, json=decision(one_queued, "allow", reviewer="Ana"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["decision"], body["quarantine"]) == ("allow", None)
    key, version = one_queued["key"], one_queued["version_id"]
    assert tags_of(s3, UPLOADS, key, version)[VERDICT] == "allow"
    assert exists(s3, UPLOADS, key, version)
    [record] = records_of(dynamodb, key)
    assert record.verdict == "review"  # the model's verdict stays what it was; the review is beside it
    assert (record.review["decision"], record.review["reviewer"], record.state) == ("allow", "Ana", "done")
    assert queue(client)["items"] == []  # it left the queue
    [feedback] = read_feedback(str(tmp_path / "feedback"))
    assert feedback.image.s3 is not None
    assert (feedback.image.s3.key, feedback.image.s3.version_id) == (key, version)
    assert feedback.correct_label == "fine"  # the policy's safe category
    assert feedback.caller["reviewer"] == "Ana"
    assert body["feedback"] is not None


def test_quarantine_moves_the_version_as_the_s3_flow_does(
    s3: Any, dynamodb: Any, served: Moderator, client: TestClient, one_queued: dict[str, Any], tmp_path: Path
) -> None:
    key, version = one_queued["key"], one_queued["version_id"]
    original = s3.get_object(Bucket=UPLOADS, Key=key, VersionId=version)["Body"].read()

    response = client.post(DECIDE, json=decision(one_queued, "quarantine", reviewer="Bo"))

    assert response.status_code == 200, response.text
    destination = quarantined_key(key, version)
    assert response.json()["quarantine"] == f"s3://{QUARANTINE}/{destination}"
    assert not exists(s3, UPLOADS, key, version)  # the source version is gone ...
    copy = s3.get_object(Bucket=QUARANTINE, Key=destination)  # ... after its verified copy
    assert copy["Body"].read() == original
    assert copy["ContentType"] == "image/jpeg"
    assert tags_of(s3, QUARANTINE, destination)[VERDICT] == "quarantine"
    [record] = records_of(dynamodb, key)
    assert record.quarantine is not None
    assert (record.quarantine.key, record.review["decision"]) == (destination, "quarantine")
    [feedback] = read_feedback(str(tmp_path / "feedback"))
    assert feedback.image.s3 is not None
    assert (feedback.image.s3.bucket, feedback.image.s3.key) == (QUARANTINE, destination)  # still readable
    assert feedback.correct_label == "bad"


def test_two_reviewers_the_first_wins_and_the_second_is_told(
    s3: Any, served: Moderator, client: TestClient, one_queued: dict[str, Any]
) -> None:
    first = client.post(DECIDE, json=decision(one_queued, "allow", reviewer="Ana"))
    second = client.post(DECIDE, json=decision(one_queued, "quarantine", reviewer="Bo"))

    assert first.status_code == 200, first.text
    assert second.status_code == 409
    assert "already decided: allow by Ana" in second.json()["detail"]
    assert exists(s3, UPLOADS, one_queued["key"], one_queued["version_id"])  # the loser did not act
    assert tags_of(s3, UPLOADS, one_queued["key"], one_queued["version_id"])[VERDICT] == "allow"


def test_two_reviewers_at_the_same_moment_one_wins(
    s3: Any, dynamodb: Any, served: Moderator, client: TestClient, one_queued: dict[str, Any]
) -> None:
    bodies = [
        decision(one_queued, "allow", reviewer="Ana"),
        decision(one_queued, "quarantine", reviewer="Bo"),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(lambda b: client.post(DECIDE, json=b), bodies))

    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(b for b, r in zip(bodies, responses, strict=True) if r.status_code == 200)
    [record] = records_of(dynamodb, one_queued["key"])
    assert record.review["reviewer"] == winner["reviewer"]
    if winner["decision"] == "allow":
        assert tags_of(s3, UPLOADS, one_queued["key"], one_queued["version_id"])[VERDICT] == "allow"
    else:
        assert not exists(s3, UPLOADS, one_queued["key"], one_queued["version_id"])


def test_an_object_overwritten_since_it_was_judged_is_not_acted_on(
    s3: Any, dynamodb: Any, served: Moderator, client: TestClient
) -> None:
    make_buckets(s3, versioned=False)  # no versions: only the ETag tells the judged bytes apart
    upload_and_judge(s3, served, "swap.jpg", image_bytes(color=(1, 2, 3)))
    [item] = queue(client)["items"]
    s3.put_object(Bucket=UPLOADS, Key="swap.jpg", Body=image_bytes(color=(200, 0, 0)))  # not yet judged

    response = client.post(DECIDE, json=decision(item, "quarantine"))

    assert response.status_code == 409
    assert "changed since it was judged" in response.json()["detail"]
    assert exists(s3, UPLOADS, "swap.jpg")
    assert not s3.list_objects_v2(Bucket=QUARANTINE).get("Contents")
    assert [i["key"] for i in queue(client)["items"]] == ["swap.jpg"]  # still awaiting a review


def test_a_version_deleted_since_it_was_judged_is_a_conflict(
    s3: Any, served: Moderator, client: TestClient, one_queued: dict[str, Any]
) -> None:
    s3.delete_object(Bucket=UPLOADS, Key=one_queued["key"], VersionId=one_queued["version_id"])

    response = client.post(DECIDE, json=decision(one_queued, "allow"))

    assert response.status_code == 409
    assert "no longer exists" in response.json()["detail"]


def test_history_holds_every_decision_on_every_version(
    s3: Any, served: Moderator, client: TestClient
) -> None:
    make_buckets(s3)
    old = upload_and_judge(s3, served, "doc.jpg", image_bytes(color=(5, 5, 5)))
    new = upload_and_judge(s3, served, "doc.jpg", image_bytes(color=(250, 250, 250)))
    older = next(i for i in queue(client)["items"] if i["version_id"] == old.version_id)
    assert client.post(DECIDE, json=decision(older, "allow", reviewer="Ana")).status_code == 200

    response = client.get("/v1/review/history", params={"bucket": UPLOADS, "key": "doc.jpg"})

    assert response.status_code == 200, response.text
    decisions = response.json()["decisions"]
    assert [d["version_id"] for d in decisions] == [old.version_id, new.version_id]  # oldest first
    assert decisions[0]["review"]["decision"] == "allow"
    assert decisions[1]["review"] == {}
    assert (
        client.get("/v1/review/history", params={"bucket": UPLOADS, "key": "none"}).json()["decisions"] == []
    )


def test_unknown_records_and_bad_requests_say_what_is_wrong(
    s3: Any, served: Moderator, client: TestClient, one_queued: dict[str, Any]
) -> None:
    unknown = client.post(DECIDE, json={**decision(one_queued, "allow"), "version": "no-such-version"})
    assert unknown.status_code == 404
    assert "no decision on" in unknown.json()["detail"]
    assert client.post(DECIDE, json=decision(one_queued, "delete")).status_code == 422
    assert client.post(DECIDE, json={**decision(one_queued, "allow"), "extra": 1}).status_code == 422
    partial = base64.urlsafe_b64encode(json.dumps({"pk": {"S": "uploads/a"}}).encode()).decode()
    for cursor in ("not-base64!", "eyJ4IjogMX0", "W10", partial):  # garbage, {"x": 1}, [], a partial key
        response = client.get(QUEUE, params={"cursor": cursor})
        assert response.status_code == 400, cursor
        assert "cursor" in response.json()["detail"]
    assert client.get(QUEUE, params={"limit": 0}).status_code == 422


def test_without_a_decision_table_the_review_routes_say_so(
    client: TestClient, make_moderator: Callable[..., Moderator], override_moderator: Any
) -> None:
    override_moderator(make_moderator(decision_table=None))

    for response in (
        client.get(QUEUE),
        client.get("/v1/review/history", params={"bucket": UPLOADS, "key": "k"}),
        client.post(
            DECIDE,
            json={"bucket": UPLOADS, "key": "k", "version": "v", "judged_by": "j", "decision": "allow"},
        ),
    ):
        assert response.status_code == 503
        assert "DECISION_TABLE" in response.json()["detail"]


def test_the_review_page_loads_without_a_key(client: TestClient) -> None:
    response = client.get("/review")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert '"console/review.js"' in response.text
    assert json.dumps(response.headers.get("content-security-policy", "")).startswith('"default-src')


def test_through_api_gateway_the_reviewers_key_id_is_recorded(
    s3: Any, dynamodb: Any, served: Moderator, one_queued: dict[str, Any]
) -> None:
    import handler.main

    event = load_event("apigw_rest_v1_classify", body="", boundary="x", content_length="0")
    body = json.dumps(decision(one_queued, "allow", reviewer="Ana"))
    event.update(resource="/v1/{proxy+}", path=DECIDE, body=body, isBase64Encoded=False)
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers["Content-Type"] = "application/json" if headers is event["headers"] else ["application/json"]
    event["requestContext"].update(resourcePath="/v1/{proxy+}", path=f"/prod{DECIDE}")

    response = handler.main.handler(event, None)

    assert response["statusCode"] == 200, response
    [record] = records_of(dynamodb, one_queued["key"])
    identity = event["requestContext"]["identity"]
    assert record.review["reviewer"] == "Ana"
    assert record.review["api_key_id"] == identity["apiKeyId"]
    assert record.review["source_ip"] == identity["sourceIp"]


def test_a_decision_cut_short_by_a_fault_is_finished_by_sending_it_again(
    s3: Any,
    dynamodb: Any,
    served: Moderator,
    client: TestClient,
    one_queued: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import handler.api.review

    key, version = one_queued["key"], one_queued["version_id"]
    faulty = S3Proxy(s3, fail_on("copy_object"), times=1)
    monkeypatch.setattr(handler.api.review, "_s3", lambda: faulty)
    with pytest.raises(ClientError):  # an infrastructure fault: a 5xx, not the reviewer's mistake
        client.post(DECIDE, json=decision(one_queued, "quarantine", reviewer="Bo"))
    [record] = records_of(dynamodb, key)
    assert (record.state, record.review["decision"]) == ("acting", "quarantine")  # claimed, not done
    assert exists(s3, UPLOADS, key, version)  # nothing moved
    assert queue(client)["items"] == []  # no one else may take it

    other = client.post(DECIDE, json=decision(one_queued, "allow", reviewer="Ana"))
    again = client.post(DECIDE, json=decision(one_queued, "quarantine", reviewer="Bo"))

    assert other.status_code == 409
    assert again.status_code == 200, again.text
    assert not exists(s3, UPLOADS, key, version)
    assert exists(s3, QUARANTINE, quarantined_key(key, version))
    [record] = records_of(dynamodb, key)
    assert record.state == "done"


def test_a_quarantine_cut_short_after_the_move_is_finished_by_sending_it_again(
    s3: Any,
    dynamodb: Any,
    served: Moderator,
    client: TestClient,
    one_queued: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The copy is verified and the source deleted, but marking the record done fails."""
    import handler.api.review
    from handler.decisions.table import DecisionTable

    def marks_done(name: str, kwargs: dict[str, Any]) -> bool:
        return name == "put_item" and kwargs["Item"].get("state") == {"S": "done"}

    faulty = DecisionTable(TABLE, S3Proxy(dynamodb, marks_done, times=1))
    monkeypatch.setattr(handler.api.review, "get_decision_table", lambda settings: faulty)
    with pytest.raises(ClientError):
        client.post(DECIDE, json=decision(one_queued, "quarantine", reviewer="Bo"))
    key, version = one_queued["key"], one_queued["version_id"]
    assert not exists(s3, UPLOADS, key, version)
    assert records_of(dynamodb, key)[0].state == "acting"

    again = client.post(DECIDE, json=decision(one_queued, "quarantine", reviewer="Bo"))

    assert again.status_code == 200, again.text
    [record] = records_of(dynamodb, key)
    assert record.state == "done"
    assert record.quarantine is not None
    assert record.quarantine.key == quarantined_key(key, version)
