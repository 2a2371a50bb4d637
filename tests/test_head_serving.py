"""Trained heads served through policies: /v1/moderate, /v1/score and the S3 flow, one embedding per image."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from handler.core.heads import HeadKind, load_head
from handler.core.moderator import Moderator
from handler.core.policy import load_policy_file
from handler.evaluation.train_head import TrainOptions, train_head
from handler.inputs.images import ImageLimits, decode_still
from handler.s3.events import ObjectRef
from handler.s3.moderation import moderate_objects
from handler.s3.tags import VERDICT
from tests.s3_doubles import UPLOADS, make_buckets, tags_of
from tests.synthetic import scored_images, solid, solid_vs_stripes, stripes

LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)


@pytest.fixture(scope="module")
def policy_file(moderator: Moderator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A policy beside two trained heads: a `solid-probe` category and an `aesthetics` score."""
    root = tmp_path_factory.mktemp("served")
    heads = root / "heads"
    data = solid_vs_stripes(root / "data", per_class=10)
    train_head(
        moderator,
        TrainOptions(
            data, HeadKind.classifier, out=heads / "probe.safetensors", cache_dir=None, progress=False
        ),
    )
    scores = scored_images(root / "scored", count=20)
    train_head(
        moderator,
        TrainOptions(
            scores.parent,
            HeadKind.regressor,
            scores=scores,
            score_range=(0.0, 10.0),
            out=heads / "aesthetics.safetensors",
            cache_dir=None,
            progress=False,
        ),
    )
    policy = {
        "name": "patterns",
        "categories": [
            {
                "name": "solid-probe",
                "head": "heads/probe.safetensors",
                "head_label": "solid",
                "action": "review",
            },
            {"name": "meh", "prompts": ["a dull thing"], "threshold": 1.0, "action": "allow"},
            {"name": "fine", "prompts": ["a fine thing"], "safe": True},
        ],
        "scores": [{"name": "aesthetics", "head": "heads/aesthetics.safetensors"}],
    }
    path = root / "patterns.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.fixture
def served(
    policy_file: Path,
    make_moderator: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
) -> Moderator:
    mod = make_moderator(moderation_policy=[policy_file])
    override_moderator(mod)
    return mod


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def count_forward_passes(mod: Moderator, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = mod.encoder.encode_pixels

    def counting(pixels: np.ndarray) -> np.ndarray:
        calls.append(pixels.shape[0])
        return real(pixels)

    monkeypatch.setattr(mod.encoder, "encode_pixels", counting)
    return calls


def test_head_paths_are_relative_to_the_policy_file(policy_file: Path) -> None:
    policy = load_policy_file(policy_file)
    assert policy.categories[0].head == str(policy_file.parent / "heads" / "probe.safetensors")
    assert policy.scores[0].head == str(policy_file.parent / "heads" / "aesthetics.safetensors")


def test_moderate_returns_head_category_and_score_from_one_forward_pass(
    client: TestClient, served: Moderator, policy_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_forward_passes(served, monkeypatch)
    image = solid((200, 40, 40))

    body = client.post("/v1/moderate", files={"image": ("red.png", png(image), "image/png")}).json()

    assert calls == [1], "the heads reuse the prompts' image embedding"
    assert body["policy"] == "patterns"
    assert set(body["scores"]) == {"solid-probe", "meh", "fine"}
    assert body["scores"]["meh"] + body["scores"]["fine"] == pytest.approx(1.0), "prompts softmax together"
    embedding = served.embed([decode_still(png(image), LIMITS, served.encoder.preprocess)])
    probe = load_head(policy_file.parent / "heads" / "probe.safetensors")
    expected = float(probe.predict(embedding)[0, probe.labels.index("solid")])
    assert body["scores"]["solid-probe"] == pytest.approx(expected, abs=1e-5)
    assert body["verdict"] == ("review" if expected >= 0.5 else "allow")
    assert set(body["head_scores"]) == {"aesthetics"}
    assert 0.0 <= body["head_scores"]["aesthetics"] <= 10.0


def test_probe_tells_solid_from_stripes_when_served(client: TestClient, served: Moderator) -> None:
    solid_body = client.post(
        "/v1/moderate", files={"image": ("s.png", png(solid((30, 90, 200))), "image/png")}
    )
    striped = client.post(
        "/v1/moderate", files={"image": ("t.png", png(stripes((20, 20, 20), 5)), "image/png")}
    )
    assert solid_body.json()["scores"]["solid-probe"] > striped.json()["scores"]["solid-probe"]


def test_score_route_returns_scores_alone(
    client: TestClient, served: Moderator, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = png(solid((10, 180, 60)))
    calls = count_forward_passes(served, monkeypatch)

    response = client.post("/v1/score", files={"image": ("g.png", image, "image/png")})

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"scores", "policy", "model", "elapsed_ms"}
    assert set(body["scores"]) == {"aesthetics"}
    assert calls == [1]
    moderated = client.post("/v1/moderate", files={"image": ("g.png", image, "image/png")}).json()
    assert body["scores"]["aesthetics"] == pytest.approx(moderated["head_scores"]["aesthetics"])

    builtin = client.post(
        "/v1/score", files={"image": ("g.png", image, "image/png")}, data={"policy": "default"}
    )
    assert builtin.status_code == 400
    assert "no score heads" in builtin.json()["detail"]


def test_policies_listing_names_heads_by_their_name_not_their_server_path(
    client: TestClient, served: Moderator, policy_file: Path
) -> None:
    response = client.get("/v1/policies")

    assert response.status_code == 200, response.text
    [patterns] = [p for p in response.json()["policies"] if p["name"] == "patterns"]
    probe = patterns["categories"][0]
    assert (probe["source"], probe["head"], probe["head_label"], probe["prompts"]) == (
        "head",
        load_head(policy_file.parent / "heads" / "probe.safetensors").name,
        "solid",
        [],
    )
    [aesthetics] = patterns["scores"]
    assert aesthetics["name"] == "aesthetics"
    assert aesthetics["head"] == load_head(policy_file.parent / "heads" / "aesthetics.safetensors").name
    assert aesthetics["score_range"] == [0.0, 10.0]
    assert str(policy_file.parent) not in response.text


def test_default_policy_answers_carry_no_head_scores(client: TestClient, jpeg: bytes) -> None:
    body = client.post("/v1/moderate", files={"image": ("a.jpg", jpeg, "image/jpeg")}).json()
    assert body["head_scores"] == {}


def test_s3_flow_tags_the_score_after_the_verdict_tags(s3: Any, served: Moderator) -> None:
    make_buckets(s3)
    body = png(solid((120, 120, 30)))
    first = s3.put_object(Bucket=UPLOADS, Key="a.png", Body=body)["VersionId"]
    crowded = "&".join(f"user{i}=v" for i in range(6))
    second = s3.put_object(Bucket=UPLOADS, Key="b.png", Body=body, Tagging=crowded)["VersionId"]

    results = moderate_objects(
        [ObjectRef(UPLOADS, "a.png", first), ObjectRef(UPLOADS, "b.png", second)], client=s3, moderator=served
    )

    assert all(r.ok for r in results)
    tags = tags_of(s3, UPLOADS, "a.png", first)
    expected = served.score_embeddings(
        served.embed([decode_still(body, LIMITS, served.encoder.preprocess)]), served.policies.default
    )[0]
    assert float(tags["moderation-aesthetics"]) == pytest.approx(expected["aesthetics"], abs=1e-4)
    assert VERDICT in tags
    full = tags_of(s3, UPLOADS, "b.png", second)
    assert len(full) == 10
    assert VERDICT in full
    assert "moderation-aesthetics" not in full, "the score tag goes only where the 10-tag limit leaves room"


@pytest.mark.slow
def test_the_serving_path_never_imports_the_evaluation_tooling() -> None:
    """scikit-learn and matplotlib serve evaluate/train-head only: the app and the S3 flow load neither.
    (transformers imports scikit-learn when installed; the Lambda runs the baked ONNX towers.)"""
    import subprocess
    import sys

    code = (
        "import sys, handler.app, handler.s3.entry, handler.core.policy_heads; "
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
