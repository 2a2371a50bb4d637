"""GET /v1/policies, the console's files and the headers every response carries (HTTP and Lambda)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from handler.console.routes import CONTENT_SECURITY_POLICY
from handler.core.moderator import Moderator
from tests.event_loader import load_event
from tests.s3_doubles import write_policy


@pytest.fixture
def forced_review(
    tmp_path: Path, make_moderator: Callable[..., Moderator], override_moderator: Callable[[Moderator], None]
) -> Moderator:
    mod = make_moderator(moderation_policy=[write_policy(tmp_path, "review")])
    override_moderator(mod)
    return mod


def test_policies_lists_each_served_policy_with_its_rules(
    client: TestClient, forced_review: Moderator
) -> None:
    response = client.get("/v1/policies")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["default"] == "forced-review"
    assert body["model"] == forced_review.model_id
    assert [p["name"] for p in body["policies"]] == ["forced-review", "default"]
    forced, builtin = body["policies"]
    assert (forced["default"], builtin["default"]) == (True, False)
    assert forced["policy_id"] == forced_review.policy("forced-review").policy_id
    assert [(c["name"], c["threshold"], c["action"], c["safe"]) for c in forced["categories"]] == [
        ("bad", 0.0, "review", False),
        ("meh", 1.0, "allow", False),
        ("fine", 0.5, "review", True),
    ]
    assert forced["categories"][0]["prompts"] == ["a bad thing"]
    assert forced["categories"][0]["source"] == "prompts"
    assert forced["categories"][0]["head"] is None
    assert forced["scores"] == []
    assert builtin["description"].startswith("Nudity")
    assert len(builtin["categories"]) == len(forced_review.policy("default").categories)


def test_policies_answer_is_the_verdicts_rule(
    client: TestClient, forced_review: Moderator, jpeg: bytes
) -> None:
    """What the listing says is what judges: the categories it names are the scores a verdict carries."""
    listing = client.get("/v1/policies").json()["policies"][0]
    verdict = client.post("/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")}).json()

    assert verdict["policy"] == listing["name"]
    assert set(verdict["scores"]) == {c["name"] for c in listing["categories"]}
    flagged_by_rule = [
        c["name"]
        for c in listing["categories"]
        if not c["safe"] and verdict["scores"][c["name"]] >= c["threshold"]
    ]
    assert sorted(verdict["flagged"]) == sorted(flagged_by_rule)


def test_the_console_page_loads_without_a_key_and_is_never_cached(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    links = re.findall(r'(?:src|href)="([^"]*)"', response.text)
    assert {"console/try.js", "console/console.css"} <= set(links)
    for link in links:
        # Relative, so the page works under an API Gateway stage prefix; nothing from a CDN.
        assert not link.startswith(("/", "http:", "https:")), link
        if link.startswith("console/"):
            assert client.get(f"/{link}").status_code == 200


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("try.js", "text/javascript"), ("api.js", "text/javascript"), ("console.css", "text/css")],
)
def test_console_files_are_served_with_their_type(client: TestClient, name: str, media_type: str) -> None:
    response = client.get(f"/console/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("name", ["nope.js", "..%2Froutes.py", "routes.py", "__init__.py", "%2e%2e"])
def test_only_the_shipped_console_files_are_served(client: TestClient, name: str) -> None:
    response = client.get(f"/console/{name}")

    assert response.status_code == 404
    assert "detail" in response.json()


def test_api_answers_are_never_cached_either(client: TestClient, jpeg: bytes) -> None:
    for response in (
        client.get("/v1/policies"),
        client.post("/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")}),
        client.post("/v1/moderate", files={"image": ("a.txt", b"not an image", "text/plain")}),
        client.get("/health"),
    ):
        assert response.headers["cache-control"] == "no-store", response.request.url


def _stage_event(path_as_sent: str) -> dict[str, Any]:
    """API Gateway REST: GET of the stage root, as the browser asked for it (`/prod` or `/prod/`)."""
    event = load_event("apigw_rest_v1_classify", body="", boundary="x", content_length="0")
    event.update(resource="/", path="/", httpMethod="GET", body=None, isBase64Encoded=False)
    for headers in (event["headers"], event["multiValueHeaders"]):
        for name in ("Content-Type", "x-api-key"):
            headers.pop(name, None)
    event["requestContext"].update(resourcePath="/", httpMethod="GET", path=path_as_sent)
    return event


@pytest.fixture
def main(moderator: Moderator) -> ModuleType:
    import handler.main

    return handler.main


def test_through_api_gateway_the_stage_root_gets_its_slash(main: ModuleType) -> None:
    response = main.handler(_stage_event("/prod"), None)

    assert response["statusCode"] == 308
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["location"] == "/prod/"
    assert headers["cache-control"] == "no-store"


def test_through_api_gateway_the_page_loads_without_a_key(main: ModuleType) -> None:
    response = main.handler(_stage_event("/prod/"), None)

    assert response["statusCode"] == 200
    assert "<title>" in response["body"]
    assert json.dumps(response["headers"]).lower().count("no-store") == 1
