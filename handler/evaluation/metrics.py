"""Evaluation metrics: scikit-learn's, plus what it lacks (threshold sweep, operating point, per-class FPR).

scikit-learn is imported inside each function: it is a tool dependency (requirements-tools.txt), and this
module's `UNKNOWN` is imported by code that must load without it.

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
    from sklearn import metrics as skm

    if not len(y_true):
        return np.zeros((len(labels), len(labels)), dtype=np.int64)
    return np.asarray(skm.confusion_matrix(list(y_true), list(y_pred), labels=list(labels)), dtype=np.int64)


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
    from sklearn import metrics as skm

    true_labels = sorted(set(y_true))
    classes = list(dict.fromkeys([*true_labels, *labels, *sorted(set(y_pred) - {UNKNOWN})]))
    columns = [*classes, UNKNOWN] if UNKNOWN in y_pred and UNKNOWN not in classes else classes
    matrix = confusion_matrix(y_true, y_pred, columns)
    total = len(y_true)
    truth, predictions = list(y_true), list(y_pred)

    def scores(subset: list[str], average: str | None) -> tuple[Any, Any, Any]:
        if not total:
            zero = 0.0 if average else np.zeros(len(subset))
            return zero, zero, zero
        p, r, f, _ = skm.precision_recall_fscore_support(
            truth, predictions, labels=subset, average=average, zero_division=0
        )
        return p, r, f

    precision, recall, f1 = scores(classes, None)
    per_class: dict[str, ClassMetrics] = {}
    for i, label in enumerate(classes):
        predicted = int(matrix[:, i].sum())
        support = int(matrix[i, :].sum())
        per_class[label] = ClassMetrics(
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=support,
            false_positive_rate=_div(predicted - int(matrix[i, i]), total - support),
            predicted=predicted,
        )
    averaged = {name: scores(true_labels, name) for name in ("macro", "weighted")}
    return {
        "accuracy": float(skm.accuracy_score(truth, predictions)) if total else 0.0,
        # scikit-learn's balanced accuracy is the macro recall over the true labels; its own function
        # warns about the `unknown` predictions, which are expected here.
        "balanced_accuracy": float(averaged["macro"][1]),
        **{
            name: {k: float(v) for k, v in zip(("precision", "recall", "f1"), values, strict=True)}
            for name, values in averaged.items()
        },
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
    """True and false positives at each distinct score taken as the threshold (descending); the threshold
    sweep needs these counts, which scikit-learn computes only privately."""
    truth = np.asarray(y, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="mergesort")
    truth, values = truth[order], values[order]
    last = np.r_[np.flatnonzero(np.diff(values)), truth.size - 1]
    tps = np.cumsum(truth)[last].astype(np.float64)
    fps = (1 + last - tps).astype(np.float64)
    return fps, tps, values[last]


def roc_curve(y: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(fpr, tpr, thresholds): `sklearn.metrics.roc_curve(..., drop_intermediate=False)`."""
    from sklearn import metrics as skm

    fpr, tpr, thresholds = skm.roc_curve(y, scores, drop_intermediate=False)
    return np.asarray(fpr), np.asarray(tpr), np.asarray(thresholds)


def precision_recall_curve(
    y: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(precision, recall, thresholds): `sklearn.metrics.precision_recall_curve`."""
    from sklearn import metrics as skm

    precision, recall, thresholds = skm.precision_recall_curve(y, scores)
    return np.asarray(precision), np.asarray(recall), np.asarray(thresholds)


def auc(x: FloatArray, y: FloatArray) -> float:
    """Area under a curve by the trapezoidal rule (`sklearn.metrics.auc`; x monotonic)."""
    from sklearn import metrics as skm

    return float(skm.auc(x, y))


def average_precision(y: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """`sklearn.metrics.average_precision_score`."""
    from sklearn import metrics as skm

    return float(skm.average_precision_score(y, scores))


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
    """R2, MSE and MAE: `sklearn.metrics.r2_score`, `mean_squared_error`, `mean_absolute_error`."""
    from sklearn import metrics as skm

    return {
        "r2": float(skm.r2_score(y_true, y_pred)),
        "mse": float(skm.mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
    }
