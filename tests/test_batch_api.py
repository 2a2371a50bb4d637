"""POST /v1/moderate/batch: several images, one forward pass, per-item errors."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from handler.core.moderator import Moderator
from tests.conftest import image_bytes


def test_multipart_batch_judges_every_image_in_order(
    client: TestClient, forced: Callable[..., Moderator], override_moderator: Callable[[Moderator], None]
) -> None:
    override_moderator(forced("review"))
    files = [
        ("images", (f"{i}.jpg", image_bytes("JPEG", color=(i * 40, 0, 0)), "image/jpeg")) for i in range(4)
    ]
    response = client.post("/v1/moderate/batch", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["policy"] == "forced-review"
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3]
    assert [r["source"] for r in body["results"]] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert [(r["error"], r["result"]["verdict"]) for r in body["results"]] == [(None, "review")] * 4


def test_batch_runs_one_forward_pass(
    client: TestClient, moderator: Moderator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = moderator.embed

    def counting(images):  # type: ignore[no-untyped-def]
        calls.append(len(images))
        return original(images)

    monkeypatch.setattr(moderator, "embed", counting)
    files = [("images", (f"{i}.png", image_bytes("PNG"), "image/png")) for i in range(5)]
    assert client.post("/v1/moderate/batch", files=files).status_code == 200
    assert calls == [5]


def test_one_bad_item_does_not_sink_the_batch(
    client: TestClient, forced: Callable[..., Moderator], override_moderator: Callable[[Moderator], None]
) -> None:
    override_moderator(forced("quarantine"))
    items = [
        {"image_base64": base64.b64encode(image_bytes("JPEG")).decode()},
        {"image_base64": base64.b64encode(b"not an image").decode()},
        {"url": "http://169.254.169.254/latest/meta-data/"},
    ]
    response = client.post("/v1/moderate/batch", json={"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["result"]["verdict"] == "quarantine"
    assert results[1]["error"]["status"] == 400
    assert "not an image" in results[1]["error"]["detail"]
    assert results[2]["error"]["status"] == 400
    assert "169.254.169.254" in results[2]["error"]["detail"]


def test_batch_limit_is_a_413_stating_it(
    client: TestClient,
    make_moderator: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
) -> None:
    override_moderator(make_moderator(max_batch_images=2))
    files = [("images", (f"{i}.png", image_bytes("PNG"), "image/png")) for i in range(3)]
    response = client.post("/v1/moderate/batch", files=files)
    assert response.status_code == 413
    assert "MAX_BATCH_IMAGES" in response.json()["detail"]


@pytest.mark.parametrize(
    "body", [{"items": []}, {"items": [{}]}, {"items": [{"url": "x", "image_base64": "y"}]}]
)
def test_invalid_batch_json_is_a_422(client: TestClient, body: dict[str, object]) -> None:
    assert client.post("/v1/moderate/batch", json=body).status_code == 422


def test_empty_multipart_batch_is_a_400(client: TestClient) -> None:
    response = client.post("/v1/moderate/batch", files={"policy": (None, "default")})
    assert response.status_code == 400
    assert "at least one image" in response.json()["detail"]
