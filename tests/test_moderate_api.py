"""POST /v1/moderate and GET /health through the real app."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from handler.core.moderator import Moderator
from tests.conftest import verdict_by_the_rule

RESPONSE_KEYS = {"verdict", "flagged", "scores", "top", "policy", "model", "elapsed_ms", "head_scores"}


def write_policy(tmp_path: Path, name: str, flag_threshold: float, action: str = "quarantine") -> Path:
    """A policy whose `bad` threshold forces the outcome: 0 always flags, 1 never does."""
    policy = {
        "name": name,
        "categories": [
            {
                "name": "bad",
                "prompts": ["a bad thing", "something awful"],
                "threshold": flag_threshold,
                "action": action,
            },
            {"name": "meh", "prompts": ["a dull thing"], "threshold": 1.0, "action": "review"},
            {"name": "fine", "prompts": ["a fine thing"], "safe": True, "threshold": 0.0},
        ],
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(policy))
    return path


def test_upload_is_judged_by_the_default_policy(
    client: TestClient, jpeg: bytes, moderator: Moderator
) -> None:
    response = client.post("/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESPONSE_KEYS
    assert body["policy"] == "default"
    assert body["model"] == "random-clip-tiny"
    assert body["verdict"] == verdict_by_the_rule(body["scores"], moderator.policies.default)
    assert sum(body["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["top"]["category"] == max(body["scores"], key=body["scores"].get)
    assert {"sexual", "gore", "violence", "hate-symbol", "safe"} <= set(body["scores"])


def test_base64_json_body(client: TestClient, jpeg: bytes) -> None:
    response = client.post("/v1/moderate", json={"image_base64": base64.b64encode(jpeg).decode()})
    assert response.status_code == 200, response.text
    assert set(response.json()) == RESPONSE_KEYS


def test_data_url_base64_is_accepted(client: TestClient, jpeg: bytes) -> None:
    data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    assert client.post("/v1/moderate", json={"image_base64": data_url}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"url": "https://example.com/a.jpg", "image_base64": "AAAA"}, {"policy": "default"}, {"nope": 1}],
)
def test_json_body_needs_exactly_one_source(client: TestClient, body: dict[str, object]) -> None:
    response = client.post("/v1/moderate", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


def test_invalid_base64_is_a_400(client: TestClient) -> None:
    response = client.post("/v1/moderate", json={"image_base64": "not base64 at all!"})
    assert response.status_code == 400
    assert "base64" in response.json()["detail"]


def test_unsupported_content_type_is_a_415(client: TestClient, jpeg: bytes) -> None:
    response = client.post("/v1/moderate", content=jpeg, headers={"content-type": "image/jpeg"})
    assert response.status_code == 415


def test_policy_thresholds_decide_the_verdict(
    client: TestClient,
    tmp_path: Path,
    jpeg: bytes,
    make_moderator: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
) -> None:
    strict = write_policy(tmp_path, "strict", flag_threshold=0.0, action="quarantine")
    lenient = write_policy(tmp_path, "lenient", flag_threshold=1.0)
    override_moderator(make_moderator(moderation_policy=[strict, lenient]))

    flagged = client.post("/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")}).json()
    assert flagged["policy"] == "strict"  # the first file is the default policy
    assert flagged["verdict"] == "quarantine"
    assert flagged["flagged"] == ["bad"]

    allowed = client.post(
        "/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")}, data={"policy": "lenient"}
    ).json()
    assert (allowed["verdict"], allowed["flagged"]) == ("allow", [])

    builtin = client.post(
        "/v1/moderate", json={"image_base64": base64.b64encode(jpeg).decode(), "policy": "default"}
    ).json()
    assert builtin["policy"] == "default"


def test_review_and_quarantine_pick_the_most_severe(
    client: TestClient,
    tmp_path: Path,
    jpeg: bytes,
    make_moderator: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
) -> None:
    policy = {
        "name": "both",
        "categories": [
            {"name": "r", "prompts": ["x"], "threshold": 0.0, "action": "review"},
            {"name": "q", "prompts": ["y"], "threshold": 0.0, "action": "quarantine"},
            {"name": "a", "prompts": ["z"], "threshold": 0.0, "action": "allow"},
            {"name": "ok", "prompts": ["w"], "safe": True},
        ],
    }
    path = tmp_path / "both.yaml"
    path.write_text(json.dumps(policy))  # JSON is valid YAML
    override_moderator(make_moderator(moderation_policy=[path]))
    body = client.post("/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")}).json()
    assert body["verdict"] == "quarantine"
    assert set(body["flagged"]) == {"r", "q", "a"}
    assert "ok" not in body["flagged"]


def test_unknown_policy_name_is_a_400_listing_the_names(client: TestClient, jpeg: bytes) -> None:
    response = client.post(
        "/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")}, data={"policy": "nope"}
    )
    assert response.status_code == 400
    assert "default" in response.json()["detail"]


def test_policy_embeddings_are_not_recomputed_per_request(
    client: TestClient, moderator: Moderator, jpeg: bytes
) -> None:
    before = moderator.encoder.text_calls
    for _ in range(3):
        assert client.post("/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")}).status_code == 200
    assert moderator.encoder.text_calls == before


def test_s3_source_outside_the_allowlist_is_a_clear_403(client: TestClient, moto_server: str) -> None:
    response = client.post("/v1/moderate", json={"s3": {"bucket": "no-such-bucket", "key": "a.jpg"}})
    assert response.status_code == 403
    assert "no-such-bucket" in response.json()["detail"]
    assert "API_S3_BUCKETS" in response.json()["detail"]


def test_health_runs_a_forward_pass(client: TestClient, moderator: Moderator) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "random-clip-tiny", "policies": ["default"]}


def test_health_is_503_when_the_model_cannot_answer(
    client: TestClient,
    make_moderator: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = make_moderator()

    def fail(*_: object) -> None:
        raise RuntimeError("weights are gone")

    monkeypatch.setattr(broken, "embed", fail)
    override_moderator(broken)
    response = client.get("/health")
    assert response.status_code == 503
    assert "weights are gone" in response.json()["detail"]
