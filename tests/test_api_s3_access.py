"""The API's `s3` source reads only API_S3_BUCKETS, and tells a caller nothing about anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from handler.core.moderator import Moderator
from handler.decisions.table import DecisionTable
from tests.conftest import image_bytes
from tests.s3_doubles import QUARANTINE, TABLE, UPLOADS, make_buckets, records_of

ROUTES = ["/v1/moderate"]  # every route reads through the same source (video: tests/test_video_api.py)


@pytest.fixture
def served(
    s3: Any, client: TestClient, make_moderator: Callable[..., Moderator], override_moderator: Any
) -> TestClient:
    make_buckets(s3)
    s3.put_object(Bucket=UPLOADS, Key="mine.jpg", Body=image_bytes())
    s3.put_object(Bucket=QUARANTINE, Key="q/evidence.jpg", Body=image_bytes())
    override_moderator(make_moderator(api_s3_buckets=[UPLOADS], quarantine_bucket=QUARANTINE))
    return client


@pytest.mark.parametrize("route", ROUTES)
def test_an_allowed_bucket_is_read(served: TestClient, route: str) -> None:
    response = served.post(route, json={"s3": {"bucket": UPLOADS, "key": "mine.jpg"}})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("route", ROUTES)
def test_everything_else_is_one_uniform_403(served: TestClient, route: str) -> None:
    probes = {
        "existing object in the quarantine bucket": (QUARANTINE, "q/evidence.jpg", None),
        "missing key in the quarantine bucket": (QUARANTINE, "q/nothing.jpg", None),
        "missing key in an allowed bucket": (UPLOADS, "nothing.jpg", None),
        "missing version in an allowed bucket": (UPLOADS, "mine.jpg", "no-such-version"),
        "bucket that does not exist": ("no-such-bucket-anywhere", "a.jpg", None),
    }
    answers = {}
    for name, (bucket, key, version) in probes.items():
        ref = {"bucket": bucket, "key": key} | ({"version_id": version} if version else {})
        response = served.post(route, json={"s3": ref})
        detail = response.json()["detail"].replace(f"s3://{bucket}/{key}", "s3://B/K")
        answers[name] = (response.status_code, detail)
    assert {status for status, _ in answers.values()} == {403}, answers
    assert len({detail for _, detail in answers.values()}) == 1, answers


def test_a_decision_on_a_stored_object_is_recorded_with_its_caller(
    s3: Any,
    dynamodb: Any,
    client: TestClient,
    forced: Callable[..., Moderator],
    override_moderator: Any,
) -> None:
    from tests.event_loader import load_event

    make_buckets(s3)
    version = s3.put_object(Bucket=UPLOADS, Key="mine.jpg", Body=image_bytes())["VersionId"]
    override_moderator(forced("review", api_s3_buckets=[UPLOADS]))

    response = client.post("/v1/moderate", json={"s3": {"bucket": UPLOADS, "key": "mine.jpg"}})

    assert response.status_code == 200, response.text
    [record] = records_of(dynamodb, "mine.jpg")
    assert (record.source, record.verdict, record.version_id) == ("api", "review", version)
    assert record.caller == {"source_ip": "testclient"}
    assert DecisionTable(TABLE, dynamodb).review_queue().records == []  # the S3 flow queues, not callers
    # The caller's decision is history only: the S3 flow still judges (and tags) that version itself.
    from handler.s3.entry import handle_notification

    event = load_event("s3_put", bucket=UPLOADS, key="mine.jpg", version_id=version)
    answer = handle_notification(event, client=s3, moderator=forced("review", api_s3_buckets=[UPLOADS]))
    assert answer["objects"][0]["outcome"] == "judged"
    assert sorted(r.source for r in records_of(dynamodb, "mine.jpg")) == ["api", "s3"]
