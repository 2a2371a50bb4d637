"""train-head on the tiny checkpoint: cross-validated quality, the head file, the cache, backbone binding."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from handler.cli import main
from handler.core.fingerprint import FINGERPRINT_FILE, backbone_fingerprint, compute_fingerprint
from handler.core.heads import Head, HeadKind, load_head, load_head_for
from handler.core.moderator import Moderator
from handler.evaluation.train_head import TrainOptions, fit_classifier, fit_regressor
from handler.exceptions import ConfigurationError
from tests.synthetic import scored_images, solid_vs_stripes


def train(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    status = main(["train-head", *argv, "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    result: dict[str, object] = json.loads(captured.out)
    return result


def test_classifier_head_separates_solid_from_stripes(
    moderator: Moderator, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = solid_vs_stripes(tmp_path / "data", per_class=16)
    out, cache = tmp_path / "probe.safetensors", tmp_path / "cache"

    result = train(capsys, str(data), "--kind", "classifier", "--out", str(out), "--cache-dir", str(cache))

    cv = result["cross_validation"]
    assert isinstance(cv, dict)
    assert cv["folds"] == 5
    assert cv["accuracy"] >= 0.9
    assert cv["macro"]["f1"] >= 0.9
    head = load_head(out)
    assert head.kind is HeadKind.classifier
    assert head.labels == ("solid", "stripes")
    assert head.meta.backbone.fingerprint == moderator.backbone_fingerprint
    assert head.meta.backbone.embedding_dim == 16
    assert head.meta.preprocessing["image_size"] == [64, 64]
    assert head.meta.training["cross_validation"]["accuracy"] == cv["accuracy"]
    assert out.stat().st_size < 20_000, "a head is a small file"

    # Embeddings were computed once: a second run reads every one from the cache (no forward pass).
    calls = 0
    real_embed = moderator.embed

    def counting(images: object) -> np.ndarray:
        nonlocal calls
        calls += 1
        return real_embed(images)  # type: ignore[arg-type]

    monkeypatch.setattr(moderator, "embed", counting)
    again = train(capsys, str(data), "--kind", "classifier", "--out", str(out), "--cache-dir", str(cache))
    assert (again["from_cache"], calls) == (32, 0)


def test_regressor_head_learns_a_score(
    moderator: Moderator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = scored_images(tmp_path / "images", count=30)
    out = tmp_path / "aesthetics.safetensors"

    result = train(
        capsys,
        str(scores.parent),
        "--kind",
        "regressor",
        "--scores",
        str(scores),
        "--score-range",
        "0",
        "10",
        "--name",
        "aesthetics",
        "--out",
        str(out),
        "--no-cache",
    )

    cv = result["cross_validation"]
    assert isinstance(cv, dict)
    assert cv["r2"] >= 0.9
    assert cv["mae"] < 1.0
    head = load_head(out)
    assert (head.kind, head.name, head.meta.score_range) == (HeadKind.regressor, "aesthetics", (0.0, 10.0))
    far = np.random.default_rng(0).normal(size=(4, 16)) * 100
    far = (far / np.linalg.norm(far, axis=-1, keepdims=True)).astype(np.float32)
    predicted = head.predict(far)
    assert predicted.shape == (4,)
    assert bool(((predicted >= 0) & (predicted <= 10)).all()), "clamped to the score range"


@pytest.mark.parametrize("classes", [2, 3])
def test_classifier_tensors_reproduce_sklearn(classes: int) -> None:
    rng = np.random.default_rng(classes)
    x = rng.normal(size=(60, 8))
    labels = [f"c{i % classes}" for i in range(60)]
    x[:, 0] += np.array([int(label[1:]) for label in labels])
    options = TrainOptions(dataset=None, kind=HeadKind.classifier, folds=3, cache_dir=None)

    tensors, names, _ = fit_classifier(x, labels, options)

    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x, labels)
    head = Head(meta=_meta(HeadKind.classifier, 8, names, 1), tensors=tensors)
    np.testing.assert_allclose(
        head.predict(x.astype(np.float32)), reference.predict_proba(x), atol=1e-5, rtol=1e-4
    )


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_regressor_tensors_reproduce_sklearn(model: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6))
    y = 3 * x[:, 0] - x[:, 1] + 5
    options = TrainOptions(
        dataset=None, kind=HeadKind.regressor, model=model, hidden=8, folds=3, cache_dir=None
    )  # type: ignore[arg-type]

    tensors, layers, _ = fit_regressor(x, y, options)

    if model == "mlp":
        estimator = MLPRegressor(
            hidden_layer_sizes=(8,), solver="lbfgs", alpha=1e-3, max_iter=5000, random_state=0
        )
    else:
        estimator = RidgeCV(alphas=np.logspace(-3, 3, 13))
    reference = make_pipeline(StandardScaler(), estimator).fit(x, y)
    head = Head(meta=_meta(HeadKind.regressor, 6, [], layers), tensors=tensors)
    np.testing.assert_allclose(
        head.predict(x.astype(np.float32)),
        reference.predict(x),
        atol=1e-3,
        rtol=1e-4,
    )


def _meta(kind: HeadKind, dim: int, labels: list[str], layers: int) -> object:
    from handler.core.heads import Backbone, HeadMetadata

    return HeadMetadata(
        name="t",
        kind=kind,
        architecture="mlp" if layers > 1 else "linear",
        layers=layers,
        labels=tuple(labels),
        backbone=Backbone(model_id="m", fingerprint="f", embedding_dim=dim),
    )


@pytest.fixture
def probe_head(moderator: Moderator, tmp_path: Path) -> Path:
    """A small valid classifier head for the tiny backbone (weights need not be trained here)."""
    from handler.core.heads import Backbone, HeadMetadata

    meta = HeadMetadata(
        name="probe",
        kind=HeadKind.classifier,
        architecture="linear",
        layers=1,
        labels=("solid", "stripes"),
        backbone=Backbone(
            model_id=moderator.model_id, fingerprint=moderator.backbone_fingerprint, embedding_dim=16
        ),
    )
    tensors = {
        "input.mean": np.zeros(16, dtype=np.float32),
        "input.scale": np.ones(16, dtype=np.float32),
        "layers.0.weight": np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32),
        "layers.0.bias": np.zeros(2, dtype=np.float32),
    }
    return Head(meta=meta, tensors=tensors).save(tmp_path / "probe.safetensors")


def test_a_head_from_another_backbone_is_refused(
    moderator: Moderator, probe_head: Path, tmp_path: Path, make_moderator: Callable[..., Moderator]
) -> None:
    other_dir = tmp_path / "other-backbone"
    shutil.copytree(moderator.encoder.model_dir, other_dir)
    weights = load_file(str(other_dir / "model.safetensors"))
    weights["visual_projection.weight"] = weights["visual_projection.weight"] + 0.01
    save_file(weights, str(other_dir / "model.safetensors"), metadata={"format": "pt"})
    other = compute_fingerprint(other_dir)
    assert other != moderator.backbone_fingerprint

    with pytest.raises(ConfigurationError) as refused:
        load_head_for(probe_head, "other/clip", other)
    message = str(refused.value)
    assert moderator.backbone_fingerprint in message
    assert other in message
    assert "retrain" in message

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "name: probed\ncategories:\n"
        "  - {name: solid, head: probe.safetensors, head_label: solid, action: review}\n"
        "  - {name: stripes, head: probe.safetensors, head_label: stripes, safe: true}\n"
    )
    head = load_head(probe_head)
    forged = head.meta.model_copy(
        update={"backbone": head.meta.backbone.model_copy(update={"fingerprint": other})}
    )
    Head(meta=forged, tensors=head.tensors).save(probe_head)
    with pytest.raises(ConfigurationError, match=f"fingerprint {other}"):
        make_moderator(moderation_policy=[policy])


def test_fingerprint_covers_the_image_tower_only_and_is_cached(moderator: Moderator, tmp_path: Path) -> None:
    model_dir = tmp_path / "copy"
    shutil.copytree(moderator.encoder.model_dir, model_dir)
    assert compute_fingerprint(model_dir) == moderator.backbone_fingerprint
    weights = load_file(str(model_dir / "model.safetensors"))
    text_key = next(k for k in weights if k.startswith("text_model."))
    weights[text_key] = weights[text_key] + 1
    save_file(weights, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    assert compute_fingerprint(model_dir) == moderator.backbone_fingerprint

    assert backbone_fingerprint(model_dir) == moderator.backbone_fingerprint
    record = json.loads((model_dir / FINGERPRINT_FILE).read_text())
    assert record["fingerprint"] == moderator.backbone_fingerprint


def test_policy_heads_must_fit_their_use(probe_head: Path, make_moderator: Callable[..., Moderator]) -> None:
    policy = probe_head.parent / "bad.yaml"
    policy.write_text(
        "name: bad\ncategories:\n"
        "  - {name: solid, head: probe.safetensors, head_label: cat}\n"
        "  - {name: b, prompts: [x]}\n  - {name: c, prompts: [y]}\n"
    )
    with pytest.raises(ConfigurationError, match="with the label 'cat'"):
        make_moderator(moderation_policy=[policy])
    policy.write_text(
        "name: bad\ncategories:\n  - {name: b, prompts: [x]}\n  - {name: c, prompts: [y]}\n"
        "scores:\n  - {name: aesthetics, head: probe.safetensors}\n"
    )
    with pytest.raises(ConfigurationError, match="must be a regressor"):
        make_moderator(moderation_policy=[policy])
