"""`python -m handler train-head`: fit a head on cached CLIP image embeddings and save it.

classifier: a logistic-regression linear probe over the dataset's labels; regressor: ridge (alpha by
efficient leave-one-out) or a small ReLU MLP on a score per image (e.g. aesthetics 0-10). Both behind a
standardisation of the embedding. Cross-validated metrics are reported, then the head is refitted on
all the data and converted to plain tensors (scikit-learn is needed to train, not to serve).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from handler.core.heads import Backbone, Head, HeadKind, HeadMetadata
from handler.core.moderator import Moderator
from handler.evaluation import metrics
from handler.evaluation.datasets import Sample, from_feedback, label_counts, load_scores
from handler.evaluation.embed_dataset import EmbeddedSet, embed_samples
from handler.evaluation.embedding_cache import EmbeddingCache, default_cache_dir
from handler.evaluation.evaluate import collect_samples
from handler.exceptions import InputError
from handler.feedback import read_feedback

logger = logging.getLogger(__name__)
Array = npt.NDArray[np.float64]


@dataclass
class TrainOptions:
    dataset: Path | None
    kind: HeadKind
    out: Path | None = None
    name: str | None = None
    scores: Path | None = None
    model: Literal["linear", "mlp"] = "linear"
    folds: int = 5
    c: float = 1.0
    hidden: int = 64
    score_range: tuple[float, float] | None = None
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    feedback: list[str] = field(default_factory=list)
    feedback_images: list[Path] = field(default_factory=list)
    batch_size: int = 16
    seed: int = 0
    progress: bool = True


def regression_samples(options: TrainOptions) -> list[Sample]:
    if options.scores is None:
        raise InputError("--kind regressor needs --scores FILE.csv (path,score per image)")
    bases = [options.dataset] if options.dataset is not None and options.dataset.is_dir() else []
    samples = [Sample(ref, repr(score)) for ref, score in load_scores(options.scores, *bases).items()]
    if options.feedback:
        records = [r for source in options.feedback for r in read_feedback(source)]
        extra = from_feedback(records, [*options.feedback_images, *bases]).samples
        samples += [s for s in extra if _is_number(s.label)]
    return samples


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _folds(requested: int, smallest_group: int) -> int:
    return max(0, min(requested, smallest_group)) if smallest_group >= 2 else 0


def fit_classifier(
    x: Array, labels: list[str], options: TrainOptions
) -> tuple[dict[str, np.ndarray], list[str], dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = label_counts(Sample("", label) for label in labels)
    if len(counts) < 2:
        raise InputError(f"a classifier needs at least two labels; the data has {list(counts)}")

    def model() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=options.c, max_iter=5000))

    folds = _folds(options.folds, min(counts.values()))
    cv: dict[str, Any] = {"folds": folds}
    if folds:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=options.seed)
        predicted = cross_val_predict(model(), x, labels, cv=splitter)
        report = metrics.classification_report(labels, [str(p) for p in predicted], sorted(counts))
        cv |= {k: report[k] for k in ("accuracy", "balanced_accuracy", "macro", "per_class")}
    fitted = model().fit(x, labels)
    scaler, probe = fitted[0], fitted[-1]
    classes = [str(c) for c in probe.classes_]
    weight, bias = np.asarray(probe.coef_), np.asarray(probe.intercept_)
    if len(classes) == 2:  # sklearn keeps one row, for classes_[1]; softmax([0, z]) = sigmoid(z)
        weight, bias = np.vstack([np.zeros_like(weight), weight]), np.r_[0.0, bias]
    tensors = _standardiser(scaler) | {"layers.0.weight": _t(weight), "layers.0.bias": _t(bias)}
    return tensors, classes, cv


def fit_regressor(
    x: Array, y: Array, options: TrainOptions
) -> tuple[dict[str, np.ndarray], int, dict[str, Any]]:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model() -> Any:
        if options.model == "mlp":
            mlp = MLPRegressor(
                hidden_layer_sizes=(options.hidden,),
                solver="lbfgs",
                alpha=1e-3,
                max_iter=5000,
                random_state=options.seed,
            )
            return make_pipeline(StandardScaler(), mlp)
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))

    folds = _folds(options.folds, len(y))
    cv: dict[str, Any] = {"folds": folds}
    if folds:
        predicted = cross_val_predict(model(), x, y, cv=KFold(folds, shuffle=True, random_state=options.seed))
        cv |= metrics.regression_report(y, predicted)
    fitted = model().fit(x, y)
    scaler, estimator = fitted[0], fitted[-1]
    tensors = _standardiser(scaler)
    if options.model == "mlp":
        for i, (w, b) in enumerate(zip(estimator.coefs_, estimator.intercepts_, strict=True)):
            tensors |= {f"layers.{i}.weight": _t(np.asarray(w).T), f"layers.{i}.bias": _t(b)}
        return tensors, len(estimator.coefs_), cv | {"alpha": 1e-3, "hidden": options.hidden}
    tensors |= {
        "layers.0.weight": _t(np.asarray(estimator.coef_)[None, :]),
        "layers.0.bias": _t([estimator.intercept_]),
    }
    return tensors, 1, cv | {"alpha": float(estimator.alpha_)}


def _t(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _standardiser(scaler: Any) -> dict[str, np.ndarray]:
    return {"input.mean": _t(scaler.mean_), "input.scale": _t(scaler.scale_)}


def head_name(options: TrainOptions) -> str:
    raw = options.name or (options.out.stem if options.out is not None else options.kind.value)
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", raw).strip("-")[:64] or options.kind.value


def train_head(mod: Moderator, options: TrainOptions) -> dict[str, Any]:
    if options.kind is HeadKind.regressor:
        samples = regression_samples(options)
    else:
        samples, _ = collect_samples(options.dataset, options.feedback, options.feedback_images)
    cache = None
    if options.cache_dir is not None:
        cache = EmbeddingCache(options.cache_dir, mod.backbone_fingerprint, mod.encoder.precision.value)
    embedded: EmbeddedSet = embed_samples(
        mod, samples, batch_size=options.batch_size, cache=cache, progress=options.progress
    ).with_dataset_precedence()
    if len(embedded.items) < 2:
        raise InputError(f"only {len(embedded.items)} readable image(s); a head needs more")
    x = embedded.embeddings.astype(np.float64)
    name = head_name(options)
    training: dict[str, Any] = {
        "dataset": str(options.dataset) if options.dataset else None,
        "samples": len(embedded.items),
        "skipped": len(embedded.skipped),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if options.kind is HeadKind.classifier:
        tensors, labels, cv = fit_classifier(x, embedded.labels, options)
        layers, score_range = 1, None
        training |= {
            "estimator": f"LogisticRegression(C={options.c})",
            "labels": label_counts(e.sample for e in embedded.items),
        }
    else:
        y = np.array([float(label) for label in embedded.labels])
        tensors, layers, cv = fit_regressor(x, y, options)
        labels, score_range = [], options.score_range or (float(y.min()), float(y.max()))
        training |= {
            "estimator": "RidgeCV" if options.model == "linear" else "MLPRegressor",
            "score_mean": float(y.mean()),
        }
    preprocess = mod.encoder.preprocess
    meta = HeadMetadata(
        name=name,
        kind=options.kind,
        architecture="mlp" if layers > 1 else "linear",
        layers=layers,
        labels=tuple(labels),
        score_range=score_range,
        backbone=Backbone(
            model_id=mod.model_id, fingerprint=mod.backbone_fingerprint, embedding_dim=x.shape[1]
        ),
        preprocessing={
            "input": "L2-normalised CLIP image embedding, standardised by input.mean and input.scale",
            "image_size": [preprocess.crop_height, preprocess.crop_width],
            "shortest_edge": preprocess.shortest_edge,
            "mean": list(preprocess.mean),
            "std": list(preprocess.std),
            "precision": mod.encoder.precision.value,
        },
        training=training | {"cross_validation": cv},
    )
    out = options.out or Path("heads") / f"{name}.safetensors"
    head = Head(meta=meta, tensors=tensors, path=out)
    head.save(out)
    return {
        "head": str(out),
        "name": name,
        "kind": options.kind.value,
        "labels": labels,
        "score_range": score_range,
        "samples": len(embedded.items),
        "from_cache": embedded.cached,
        "cross_validation": cv,
    }
