"""handler.evaluation.metrics gives scikit-learn's numbers on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from handler.evaluation import metrics

Y_TRUE = ["cat", "cat", "dog", "dog", "dog", "bird", "bird", "cat", "dog", "bird", "cat", "dog"]
Y_PRED = ["cat", "dog", "dog", "unknown", "dog", "bird", "cat", "cat", "bird", "unknown", "fish", "dog"]
LABELS = sorted(set(Y_TRUE))


def test_classification_report_matches_sklearn() -> None:
    report = metrics.classification_report(Y_TRUE, Y_PRED, ["cat", "dog", "bird", "fish"])

    assert report["accuracy"] == pytest.approx(skm.accuracy_score(Y_TRUE, Y_PRED))
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        balanced = skm.balanced_accuracy_score(Y_TRUE, Y_PRED)
    assert report["balanced_accuracy"] == pytest.approx(balanced)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        Y_TRUE, Y_PRED, labels=LABELS, zero_division=0
    )
    for i, label in enumerate(LABELS):
        row = report["per_class"][label]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision[i], recall[i], f1[i]))
        assert row["support"] == support[i]
    for average in ("macro", "weighted"):
        expected = skm.precision_recall_fscore_support(
            Y_TRUE, Y_PRED, labels=LABELS, average=average, zero_division=0
        )[:3]
        got = report[average]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(expected)


def test_confusion_matrix_counts_unknown_and_extra_predicted_classes() -> None:
    report = metrics.classification_report(Y_TRUE, Y_PRED, ["cat", "dog", "bird", "fish"])
    cm = report["confusion_matrix"]

    assert cm["true"] == ["bird", "cat", "dog", "fish"]
    assert cm["predicted"] == ["bird", "cat", "dog", "fish", "unknown"]
    expected = skm.confusion_matrix(Y_TRUE, Y_PRED, labels=cm["predicted"])[: len(cm["true"])]
    np.testing.assert_array_equal(np.array(cm["counts"]), expected)
    assert report["unknown"] == 2
    assert report["per_class"]["fish"]["support"] == 0
    assert report["per_class"]["fish"]["precision"] == 0.0  # its one prediction was wrong


def test_false_positive_rate_is_one_vs_rest() -> None:
    report = metrics.classification_report(Y_TRUE, Y_PRED, LABELS)
    for label in LABELS:
        truth = np.array([t == label for t in Y_TRUE])
        predicted = np.array([p == label for p in Y_PRED])
        tn, fp, _, _ = skm.confusion_matrix(truth, predicted, labels=[False, True]).ravel()
        assert report["per_class"][label]["false_positive_rate"] == pytest.approx(fp / (fp + tn))


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.4
    s = np.round(np.clip(0.3 * y + rng.random(60) * 0.7, 0, 1), 2)  # rounded: ties included
    return y, s


def test_roc_and_precision_recall_curves_match_sklearn(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scores
    for ours, theirs in zip(
        metrics.roc_curve(y, s), skm.roc_curve(y, s, drop_intermediate=False), strict=True
    ):
        np.testing.assert_allclose(ours, theirs)
    for ours, theirs in zip(
        metrics.precision_recall_curve(y, s), skm.precision_recall_curve(y, s), strict=True
    ):
        np.testing.assert_allclose(ours, theirs)
    fpr, tpr, _ = metrics.roc_curve(y, s)
    assert metrics.auc(fpr, tpr) == pytest.approx(skm.roc_auc_score(y, s))
    assert metrics.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))


def test_threshold_for_a_target_recall_or_false_positive_rate(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scores
    sweep = metrics.threshold_sweep(y, s)
    point = metrics.pick_threshold(sweep, target_recall=0.9)
    assert point is not None
    assert point.met
    flagged = s >= point.threshold
    assert skm.recall_score(y, flagged) == pytest.approx(point.recall)
    assert point.recall >= 0.9
    assert skm.precision_score(y, flagged) == pytest.approx(point.precision)
    assert skm.recall_score(y, s >= np.nextafter(point.threshold, 2)) < 0.9, "the highest such threshold"

    point = metrics.pick_threshold(sweep, target_fpr=0.1)
    assert point is not None
    flagged = s >= point.threshold
    assert (flagged & ~y).sum() / (~y).sum() == pytest.approx(point.false_positive_rate)
    assert point.false_positive_rate <= 0.1
    below = s[s < point.threshold]
    if below.size:
        looser = s >= below.max()
        assert (looser & ~y).sum() / (~y).sum() > 0.1, "the lowest such threshold"


def test_regression_report_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random(40) * 10
    predicted = truth + rng.normal(0, 0.5, 40)
    report = metrics.regression_report(truth, predicted)
    assert report["r2"] == pytest.approx(skm.r2_score(truth, predicted))
    assert report["mse"] == pytest.approx(skm.mean_squared_error(truth, predicted))
    assert report["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted))
