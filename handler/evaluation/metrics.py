"""Evaluation metrics in plain numpy, defined as scikit-learn defines them (tests compare the two).

Classification: the predictions may include `unknown` (below the threshold); it is never a true label, so
an unknown counts against the recall of the image's true class and against no class's precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
UNKNOWN = "unknown"


def _div(numerator: float, denominator: float) -> float:
    """scikit-learn's zero_division=0: an undefined ratio is 0."""
    return float(numerator / denominator) if denominator else 0.0


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Rows: true label; columns: predicted label, both in `labels` order (pairs outside are not counted)."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for truth, prediction in zip(y_true, y_pred, strict=True):
        if truth in index and prediction in index:
            matrix[index[truth], index[prediction]] += 1
    return matrix


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int
    false_positive_rate: float
    predicted: int


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class and macro/weighted precision, recall and F1, the confusion
    matrix and the unknown count. Macro and weighted averages run over the labels that occur in `y_true`
    (scikit-learn's `labels=` those labels); `labels` and the predictions may add classes with no true
    instance, which get a row of their own (their precision counts their wrong predictions)."""
    true_labels = sorted(set(y_true))
    classes = list(dict.fromkeys([*true_labels, *labels, *sorted(set(y_pred) - {UNKNOWN})]))
    columns = [*classes, UNKNOWN] if UNKNOWN in y_pred and UNKNOWN not in classes else classes
    matrix = confusion_matrix(y_true, y_pred, columns)
    total = len(y_true)
    per_class: dict[str, ClassMetrics] = {}
    for i, label in enumerate(classes):
        tp = int(matrix[i, i])
        predicted = int(matrix[:, i].sum())
        support = int(matrix[i, :].sum())
        fp, fn = predicted - tp, support - tp
        negatives = total - support
        per_class[label] = ClassMetrics(
            precision=_div(tp, tp + fp),
            recall=_div(tp, tp + fn),
            f1=_div(2 * tp, 2 * tp + fp + fn),
            support=support,
            false_positive_rate=_div(fp, negatives),
            predicted=predicted,
        )
    averaged = [per_class[label] for label in true_labels]
    supports = np.array([m.support for m in averaged], dtype=np.float64)

    def average(name: str, weights: FloatArray | None) -> float:
        values = np.array([getattr(m, name) for m in averaged], dtype=np.float64)
        return float(np.average(values, weights=weights)) if len(values) else 0.0

    correct = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == p)
    return {
        "accuracy": _div(correct, total),
        "balanced_accuracy": average("recall", None),
        "macro": {k: average(k, None) for k in ("precision", "recall", "f1")},
        "weighted": {k: average(k, supports) for k in ("precision", "recall", "f1")},
        "per_class": {label: asdict(m) for label, m in per_class.items()},
        "confusion_matrix": {
            "true": classes,
            "predicted": columns,
            "counts": matrix[: len(classes)].tolist(),
        },
        "unknown": sum(1 for p in y_pred if p == UNKNOWN),
        "images": total,
    }


def _cumulative(y: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """True and false positives at each distinct score taken as the threshold (descending)."""
    truth = np.asarray(y, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="mergesort")
    truth, values = truth[order], values[order]
    last = np.r_[np.flatnonzero(np.diff(values)), truth.size - 1]
    tps = np.cumsum(truth)[last].astype(np.float64)
    fps = (1 + last - tps).astype(np.float64)
    return fps, tps, values[last]


def roc_curve(y: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(fpr, tpr, thresholds) as `sklearn.metrics.roc_curve(..., drop_intermediate=False)`."""
    fps, tps, thresholds = _cumulative(y, scores)
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, np.r_[np.inf, thresholds]


def precision_recall_curve(
    y: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(precision, recall, thresholds) as `sklearn.metrics.precision_recall_curve`."""
    fps, tps, thresholds = _cumulative(y, scores)
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def auc(x: FloatArray, y: FloatArray) -> float:
    """Area under a curve by the trapezoidal rule (x monotonic)."""
    return float(abs(np.trapezoid(y, x)))


def average_precision(y: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """`sklearn.metrics.average_precision_score`: sum over thresholds of (R_n - R_n-1) * P_n."""
    precision, recall, _ = precision_recall_curve(y, scores)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


@dataclass(frozen=True)
class OperatingPoint:
    """Flag when the score is at or above `threshold`; what that gives on the evaluated data."""

    threshold: float
    precision: float
    recall: float
    false_positive_rate: float
    target: str
    met: bool


def threshold_sweep(y: npt.ArrayLike, scores: npt.ArrayLike) -> dict[str, FloatArray]:
    """Precision, recall (TPR) and FPR of the rule `score >= t` at every distinct score t (descending)."""
    fps, tps, thresholds = _cumulative(y, scores)
    positives, negatives = tps[-1], fps[-1]
    return {
        "threshold": thresholds,
        "precision": tps / (tps + fps),
        "recall": tps / positives if positives else np.zeros_like(tps),
        "false_positive_rate": fps / negatives if negatives else np.zeros_like(fps),
    }


def pick_threshold(
    sweep: dict[str, FloatArray], *, target_recall: float | None = None, target_fpr: float | None = None
) -> OperatingPoint | None:
    """The highest threshold reaching `target_recall` (the most precise such rule), or the lowest one
    keeping the FPR at or below `target_fpr` (the most sensitive such rule). When the target cannot be
    met, the closest point is returned with `met=False`. None for an empty sweep."""
    thresholds = sweep["threshold"]
    if not len(thresholds):
        return None
    if target_fpr is not None:
        ok = np.flatnonzero(sweep["false_positive_rate"] <= target_fpr)
        met, i = bool(len(ok)), int(ok[-1]) if len(ok) else 0
        target = f"false_positive_rate <= {target_fpr}"
    else:
        wanted = 0.95 if target_recall is None else target_recall
        ok = np.flatnonzero(sweep["recall"] >= wanted)
        met, i = bool(len(ok)), int(ok[0]) if len(ok) else len(thresholds) - 1
        target = f"recall >= {wanted}"
    return OperatingPoint(
        threshold=float(thresholds[i]),
        precision=float(sweep["precision"][i]),
        recall=float(sweep["recall"][i]),
        false_positive_rate=float(sweep["false_positive_rate"][i]),
        target=target,
        met=met,
    )


def regression_report(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """R2, MSE and MAE as `sklearn.metrics.r2_score`, `mean_squared_error`, `mean_absolute_error`."""
    truth = np.asarray(y_true, dtype=np.float64)
    error = truth - np.asarray(y_pred, dtype=np.float64)
    total = float(np.sum((truth - truth.mean()) ** 2))
    residual = float(np.sum(error**2))
    r2 = 1.0 - residual / total if total else (1.0 if residual == 0 else 0.0)
    return {"r2": r2, "mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error)))}
