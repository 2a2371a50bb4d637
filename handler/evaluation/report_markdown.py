"""report.md: the evaluation summary a person reads (report.json holds everything)."""

from __future__ import annotations

from typing import Any

LISTED = 25  # misclassified / unknown images listed in the Markdown (all are in report.json)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _images(title: str, rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["", f"## {title} ({len(rows)})", ""]
    lines += _table(
        ["image", "true", "predicted", "top (p)"],
        [
            [f"`{r['ref']}`", r["label"], r["predicted"], f"{r['top']} ({r['probability']:.3f})"]
            for r in rows[:LISTED]
        ],
    )
    if len(rows) > LISTED:
        lines.append(f"\n... and {len(rows) - LISTED} more in report.json.")
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    m, mode, data, timing = report["metrics"], report["mode"], report["dataset"], report["timing"]
    lines = [
        "# Evaluation report",
        "",
        f"- dataset: `{data['source']}`, {data['images']} images, labels {data['labels']}"
        + (f", {data['from_feedback']} from feedback" if data["from_feedback"] else ""),
        f"- model: `{report['model']['id']}` (fingerprint `{report['model']['fingerprint']}`, "
        f"{report['model']['runtime']}, {report['model']['precision']})",
        f"- mode: {mode['kind']}, classes {mode['classes']}"
        + (f", threshold {mode['threshold']}" if mode.get("threshold") is not None else "")
        + (f", policy `{mode['policy']}`" if mode.get("policy") else "")
        + (f", map {mode['map']}" if mode.get("map") else ""),
        "",
        *_table(
            [
                "accuracy",
                "balanced accuracy",
                "macro F1",
                "weighted F1",
                "unknown",
                "mean ms/image",
                "p95 ms/image",
                "peak RSS MiB",
            ],
            [
                [
                    _f(m["accuracy"]),
                    _f(m["balanced_accuracy"]),
                    _f(m["macro"]["f1"]),
                    _f(m["weighted"]["f1"]),
                    m["unknown"],
                    _f(timing["mean_ms_per_image"]),
                    _f(timing["p95_ms_per_image"]),
                    report["memory"]["peak_rss_mib"],
                ]
            ],
        ),
        "",
        "## Per class",
        "",
        *_table(
            ["class", "precision", "recall", "F1", "support", "false-positive rate", "predicted"],
            [
                [
                    name,
                    _f(c["precision"]),
                    _f(c["recall"]),
                    _f(c["f1"]),
                    c["support"],
                    _f(c["false_positive_rate"]),
                    c["predicted"],
                ]
                for name, c in m["per_class"].items()
            ],
        ),
        "",
        f"Macro precision {_f(m['macro']['precision'])}, recall {_f(m['macro']['recall'])}; "
        f"weighted precision {_f(m['weighted']['precision'])}, recall {_f(m['weighted']['recall'])}.",
        "",
        "## Confusion matrix (rows: true label; columns: predicted)",
        "",
    ]
    cm = m["confusion_matrix"]
    lines += _table(
        ["", *cm["predicted"]], [[t, *row] for t, row in zip(cm["true"], cm["counts"], strict=True)]
    )
    curves = report["curves"]
    lines += ["", f"## Positive class `{report['positive_class']}`", ""]
    if curves.get("available"):
        point = curves["operating_point"]
        auc, ap = _f(curves["roc_auc"]), _f(curves["average_precision"])
        lines.append(f"ROC AUC {auc}, average precision {ap}.")
        if point:
            met = "" if point["met"] else " (target not reachable on this data; closest shown)"
            lines.append(
                f"Operating point for {point['target']}: flag when p >= {point['threshold']:.4f} "
                f"-> precision {_f(point['precision'])}, recall {_f(point['recall'])}, false-positive rate "
                f"{_f(point['false_positive_rate'])}{met}."
            )
    else:
        lines.append(f"No curves: {curves.get('reason')}.")
    pictures = [f for f in report.get("files", []) if f.endswith(".png")]
    lines += ["", *(f"![{f[:-4].replace('_', ' ')}]({f})" for f in pictures)]
    if "calibration" in report:
        cal = report["calibration"]
        lines += ["", f"## Calibrated policy: `{cal['policy_file']}` ({cal['policy']})", ""]
        lines += _table(
            ["category", "old", "new", "target", "precision", "recall", "fpr"],
            [
                [
                    c["category"],
                    c.get("old", c.get("kept")),
                    c.get("new", "kept"),
                    c.get("target", c.get("reason")),
                    c.get("precision", ""),
                    c.get("recall", ""),
                    c.get("false_positive_rate", ""),
                ]
                for c in cal["categories"]
            ],
        )
    lines += _images("Misclassified", report["misclassified"]) + _images("Unknown", report["unknown"])
    if report["warnings"]:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in report["warnings"])]
    return "\n".join(lines) + "\n"
