"""The thesis API, POST /classify/, through the real app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from handler.core.moderator import Moderator


def post_image(client: TestClient, data: bytes, path: str = "/classify/", **fields: str):  # type: ignore[no-untyped-def]
    return client.post(path, files={"image": ("photo.jpg", data, "image/jpeg")}, data=fields)


@pytest.mark.parametrize("path", ["/classify/", "/classify"])
def test_upload_returns_the_thesis_shape_with_default_classes(
    client: TestClient, jpeg: bytes, path: str
) -> None:
    response = post_image(client, jpeg, path)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert set(result) == {"prediction", "label_probabilities", "original_payload"}
    assert set(result["label_probabilities"]) == {"nsfw", "sfw"}
    assert sum(result["label_probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["prediction"] == max(result["label_probabilities"], key=result["label_probabilities"].get)
    assert result["original_payload"] == {"location": None, "classifier": "clip"}


def test_classes_are_trimmed_deduplicated_and_empty_ones_dropped(client: TestClient, jpeg: bytes) -> None:
    response = post_image(client, jpeg, classes=" cat ,dog,, cat , a red car ")
    assert response.status_code == 200, response.text
    assert list(response.json()["result"]["label_probabilities"]) == ["cat", "dog", "a red car"]


@pytest.mark.parametrize("classes", ["nsfw", "nsfw, nsfw", " , ,", "cat,  ,"])
def test_fewer_than_two_distinct_classes_is_a_400_saying_so(
    client: TestClient, jpeg: bytes, classes: str
) -> None:
    response = post_image(client, jpeg, classes=classes)
    assert response.status_code == 400
    assert "at least two distinct" in response.json()["detail"]


def test_threshold_above_top_probability_gives_unknown(client: TestClient, jpeg: bytes) -> None:
    response = post_image(client, jpeg, classes="a, b, c", threshold="0.9")
    assert response.status_code == 200
    result = response.json()["result"]
    assert max(result["label_probabilities"].values()) < 0.9  # random weights: nearly flat
    assert result["prediction"] == "unknown"


def test_threshold_below_top_probability_keeps_the_prediction(client: TestClient, jpeg: bytes) -> None:
    result = post_image(client, jpeg, classes="a, b, c", threshold="0.01").json()["result"]
    assert result["prediction"] in {"a", "b", "c"}


@pytest.mark.parametrize("threshold", ["-0.1", "1.5", "high"])
def test_threshold_out_of_range_is_rejected(client: TestClient, jpeg: bytes, threshold: str) -> None:
    assert post_image(client, jpeg, threshold=threshold).status_code == 422


def test_unknown_classifier_is_a_400_listing_the_known_ones(client: TestClient, jpeg: bytes) -> None:
    response = post_image(client, jpeg, classifier="resnet")
    assert response.status_code == 400
    assert "clip" in response.json()["detail"]


def test_neither_image_nor_location_is_a_400(client: TestClient) -> None:
    response = client.post("/classify/", data={"classes": "a, b"})
    assert response.status_code == 400
    assert "exactly one" in response.json()["detail"]


def test_both_image_and_location_is_a_400(client: TestClient, jpeg: bytes) -> None:
    response = post_image(client, jpeg, location="https://example.com/a.jpg")
    assert response.status_code == 400


def test_location_pointing_at_loopback_is_refused_with_a_reason(client: TestClient) -> None:
    response = client.post("/classify/", data={"location": "http://127.0.0.1:8000/health"})
    assert response.status_code == 400
    assert "127.0.0.1" in response.json()["detail"]


def test_text_embeddings_are_computed_once_per_label_set(
    client: TestClient, moderator: Moderator, jpeg: bytes
) -> None:
    classes = "a cached label, another cached label"
    before = moderator.encoder.text_calls
    assert post_image(client, jpeg, classes=classes).status_code == 200
    assert moderator.encoder.text_calls == before + 1
    for _ in range(3):
        assert post_image(client, jpeg, classes=classes).status_code == 200
    assert moderator.encoder.text_calls == before + 1
    assert post_image(client, jpeg, classes="a new label, another").status_code == 200
    assert moderator.encoder.text_calls == before + 2


def test_openapi_documents_every_field(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body_ref = schema["paths"]["/classify/"]["post"]["requestBody"]["content"]["multipart/form-data"][
        "schema"
    ]["$ref"]
    form = schema["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(form["properties"]) == {"image", "location", "classes", "classifier", "threshold"}
    assert all(prop.get("description") for prop in form["properties"].values())
    moderate = schema["paths"]["/v1/moderate"]["post"]["requestBody"]["content"]
    assert set(moderate) == {"multipart/form-data", "application/json"}
    json_body = schema["components"]["schemas"]["ModerateJSONRequest"]
    assert set(json_body["properties"]) == {"url", "image_base64", "s3", "policy"}
    assert all(prop.get("description") for prop in json_body["properties"].values())
    assert client.get("/docs").status_code == 200
