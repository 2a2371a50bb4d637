"""PNG plots of an evaluation: the confusion matrix, and for the positive class the ROC curve, the
precision-recall curve and the threshold sweep with the chosen operating point. matplotlib (Agg) is
imported here only, so nothing on the serving path loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(report: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    cm = report["metrics"]["confusion_matrix"]
    counts = np.array(cm["counts"], dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = max(3.6, 0.7 * len(cm["predicted"]) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cm["predicted"])), cm["predicted"], rotation=45, ha="right")
    ax.set_yticks(range(len(cm["true"])), cm["true"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true label")
    for (i, j), value in np.ndenumerate(counts):
        ax.text(j, i, int(value), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    m = report["metrics"]
    ax.set_title(f"accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _mark(ax: Any, x: float, y: float, label: str) -> None:
    ax.plot([x], [y], "o", color="crimson", zorder=3)
    right = x > 0.5  # keep the label inside the axes
    ax.annotate(
        label,
        (x, y),
        textcoords="offset points",
        xytext=(-8 if right else 8, -14),
        ha="right" if right else "left",
        fontsize=8,
        color="crimson",
    )


def curve_pngs(report: dict[str, Any], full: dict[str, Any], out: Path) -> list[str]:
    plt = _pyplot()
    curves, positive = report["curves"], report["positive_class"]
    point = curves["operating_point"]
    mark = f"t={point['threshold']:.3f} ({point['target']})" if point else ""

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot(full["fpr"], full["tpr"], drawstyle="steps-post", label=f"AUC {curves['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    if point:
        _mark(ax, point["false_positive_rate"], point["recall"], mark)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)", title=f"ROC: {positive}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=DPI)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot(
        full["recall"],
        full["precision"],
        drawstyle="steps-post",
        label=f"AP {curves['average_precision']:.3f}",
    )
    if point:
        _mark(ax, point["recall"], point["precision"], mark)
    ax.set(xlabel="recall", ylabel="precision", ylim=(0, 1.05), title=f"Precision-recall: {positive}")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "precision_recall.png", dpi=DPI)
    plt.close(fig)

    sweep = full["sweep"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for key, style in (("precision", "-"), ("recall", "--"), ("false_positive_rate", ":")):
        ax.plot(sweep["threshold"], sweep[key], style, drawstyle="steps-post", label=key.replace("_", " "))
    if point:
        ax.axvline(point["threshold"], color="crimson", lw=1)
        right = point["threshold"] > 0.5
        ax.annotate(
            mark,
            (point["threshold"], 0.02),
            xytext=(-4 if right else 4, 0),
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize=8,
            color="crimson",
        )
    ax.set(
        xlabel=f"threshold on p({positive})",
        ylabel="rate",
        xlim=(0, 1),
        ylim=(0, 1.05),
        title="Threshold sweep (flag when p >= threshold)",
    )
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "threshold_sweep.png", dpi=DPI)
    plt.close(fig)
    return ["roc.png", "precision_recall.png", "threshold_sweep.png"]


def write_plots(report: dict[str, Any], full: dict[str, Any] | None, out: Path) -> list[str]:
    """Write every plot the report supports into `out`; returns the file names."""
    confusion_matrix_png(report, out / "confusion_matrix.png")
    files = ["confusion_matrix.png"]
    if full is not None and report["curves"].get("available"):
        files += curve_pngs(report, full, out)
    return files
