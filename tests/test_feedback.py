"""POST /v1/feedback to a local directory and to S3 (moto), and feedback as labelled data."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from handler.core.heads import HeadKind
from handler.core.moderator import Moderator
from handler.evaluation.evaluate import evaluate
from handler.evaluation.options import EvaluateOptions
from handler.evaluation.train_head import TrainOptions, train_head
from handler.feedback import FeedbackImage, LocalFeedbackStore, new_record, read_feedback
from tests.conftest import image_bytes
from tests.synthetic import solid, solid_vs_stripes

BUCKET = "feedback-bucket"


@pytest.fixture
def local(
    tmp_path: Path, make_moderator: Callable[..., Moderator], override_moderator: Callable[[Moderator], None]
) -> Path:
    directory = tmp_path / "feedback"
    override_moderator(make_moderator(feedback_dir=directory))
    return directory


def test_feedback_round_trip_through_a_local_directory(client: TestClient, local: Path, jpeg: bytes) -> None:
    response = client.post(
        "/v1/feedback",
        json={
            "image_base64": base64.b64encode(jpeg).decode(),
            "verdict": "allow",
            "correct_label": " nsfw ",
            "policy": "default",
            "note": "missed by the model",
        },
    )

    assert response.status_code == 201, response.text
    body = response.json()
    digest = hashlib.sha256(jpeg).hexdigest()
    assert body["sha256"] == digest
    [file] = list(local.glob("*.jsonl"))
    assert body["stored"] == str(file)
    lines = file.read_text().splitlines()
    assert len(lines) == 1
    stored = json.loads(lines[0])
    assert base64.b64encode(jpeg).decode()[:40] not in lines[0], "image bytes are never stored"
    assert stored["image"] == {"sha256": digest}
    assert (stored["correct_label"], stored["verdict"], stored["note"]) == (
        "nsfw",
        "allow",
        "missed by the model",
    )
    [record] = read_feedback(str(local))
    assert (record.id, record.image.sha256, record.correct_label) == (body["id"], digest, "nsfw")

    client.post("/v1/feedback", json={"sha256": digest, "correct_label": "safe"})
    assert len(file.read_text().splitlines()) == 2, "appended as JSON lines"


@pytest.mark.parametrize(
    "payload",
    [
        {"correct_label": "nsfw"},
        {"sha256": "0" * 64, "correct_label": "  "},
        {"sha256": "not-hex", "correct_label": "nsfw"},
        {"sha256": "0" * 64, "correct_label": "nsfw", "extra": 1},
    ],
)
def test_bad_feedback_is_a_422(client: TestClient, local: Path, payload: dict[str, object]) -> None:
    response = client.post("/v1/feedback", json=payload)
    assert response.status_code == 422
    assert "detail" in response.json()
    assert not local.exists()


def test_feedback_hash_must_match_the_image(client: TestClient, local: Path, jpeg: bytes) -> None:
    body = {"image_base64": base64.b64encode(jpeg).decode(), "sha256": "0" * 64, "correct_label": "x"}
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 400
    assert "does not match" in response.json()["detail"]


def test_feedback_round_trip_through_s3(
    client: TestClient,
    s3: Any,
    make_moderator: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    override_moderator(
        make_moderator(feedback_bucket=BUCKET, feedback_prefix="fb/", api_s3_buckets=["uploads"])
    )

    response = client.post(
        "/v1/feedback",
        json={"s3": {"bucket": "uploads", "key": "cats/a b.jpg", "version_id": "v1"}, "correct_label": "cat"},
    )

    assert response.status_code == 201, response.text
    stored = response.json()["stored"]
    assert stored.startswith(f"s3://{BUCKET}/fb/")
    assert stored.endswith(".jsonl")
    [item] = s3.list_objects_v2(Bucket=BUCKET, Prefix="fb/")["Contents"]
    assert stored == f"s3://{BUCKET}/{item['Key']}"
    [record] = read_feedback(f"s3://{BUCKET}/fb/")
    assert record.image.s3 is not None
    assert (record.image.s3.key, record.image.s3.version_id, record.correct_label) == (
        "cats/a b.jpg",
        "v1",
        "cat",
    )
    assert record.caller == {"source_ip": "testclient"}  # who sent it, as the platform saw them
    elsewhere = client.post(
        "/v1/feedback", json={"s3": {"bucket": "quarantine", "key": "x.jpg"}, "correct_label": "cat"}
    )
    assert elsewhere.status_code == 403

    override_moderator(make_moderator(feedback_bucket="no-such-bucket"))
    failed = client.post("/v1/feedback", json={"sha256": "0" * 64, "correct_label": "cat"})
    assert failed.status_code == 503
    assert "could not be stored" in failed.json()["detail"]


@pytest.mark.parametrize("url", ["/etc/passwd", "file:///etc/passwd", "s3://bucket/key", "ftp://host/a.jpg"])
def test_feedback_urls_are_http_only(client: TestClient, local: Path, url: str) -> None:
    response = client.post("/v1/feedback", json={"url": url, "correct_label": "cat"})
    assert response.status_code == 422
    assert not list(local.glob("*.jsonl"))


def test_a_record_naming_a_local_path_is_never_read(moderator: Moderator, tmp_path: Path) -> None:
    data = solid_vs_stripes(tmp_path / "data", per_class=2)
    secret = tmp_path / "operator-secret.png"
    solid((1, 2, 3)).save(secret)
    feedback = tmp_path / "feedback"
    feedback.mkdir()
    forged = {
        "id": "x",
        "received_at": "2026-01-01T00:00:00Z",
        "image": {"url": str(secret)},
        "correct_label": "solid",
    }
    (feedback / "2026-01-01.jsonl").write_text(json.dumps(forged) + "\n")

    report = evaluate(
        moderator,
        EvaluateOptions(dataset=data, out=tmp_path / "report", feedback=[str(feedback)], progress=False),
    )

    assert report["dataset"]["from_feedback"] == 0
    assert report["dataset"]["images"] == 4


def test_evaluate_and_train_head_take_feedback_as_labelled_data(
    moderator: Moderator, tmp_path: Path, s3: Any
) -> None:
    data = solid_vs_stripes(tmp_path / "data", per_class=4)
    extra = tmp_path / "extra"
    extra.mkdir()
    solid((250, 250, 0)).save(extra / "new.png")
    s3.create_bucket(Bucket="uploads")
    version = s3.put_object(Bucket="uploads", Key="s 1.jpg", Body=image_bytes(color=(0, 90, 200)))

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    store = LocalFeedbackStore(tmp_path / "feedback")
    store.put(new_record(FeedbackImage(sha256=sha(data / "solid" / "00.png")), "stripes"))  # a correction
    store.put(new_record(FeedbackImage(sha256=sha(extra / "new.png")), "solid"))  # found by hash
    s3_ref = {"bucket": "uploads", "key": "s 1.jpg", "version_id": version.get("VersionId")}
    store.put(new_record(FeedbackImage.model_validate({"s3": s3_ref}), "solid"))
    lost = new_record(FeedbackImage(sha256="f" * 64), "solid")
    store.put(lost)

    report = evaluate(
        moderator,
        EvaluateOptions(
            dataset=data,
            out=tmp_path / "report",
            feedback=[str(tmp_path / "feedback")],
            feedback_images=[extra],
            progress=False,
        ),
    )

    assert report["dataset"]["images"] == 8 + 2
    assert report["dataset"]["from_feedback"] == 2
    assert report["dataset"]["feedback_on_dataset_images"] == 1
    # A correction never overrides a curated label silently: the dataset's label stays, the clash is listed.
    assert report["dataset"]["feedback_conflicts"] == [
        {
            "image": str(data / "solid" / "00.png"),
            "dataset_label": "solid",
            "feedback_label": "stripes",
            "feedback_ref": str(data / "solid" / "00.png"),
        }
    ]
    assert any("disagree with the dataset" in w for w in report["warnings"])
    assert report["dataset"]["feedback_unresolved"] == [lost.id]
    assert report["dataset"]["labels"] == {"solid": 4 + 2, "stripes": 4}

    result = train_head(
        moderator,
        TrainOptions(
            data,
            kind=HeadKind.classifier,
            out=tmp_path / "h.safetensors",
            feedback=[str(tmp_path / "feedback")],
            feedback_images=[extra],
            folds=2,
            cache_dir=None,
            progress=False,
        ),
    )
    assert result["samples"] == 10
