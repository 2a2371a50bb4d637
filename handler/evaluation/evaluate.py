"""`python -m handler evaluate`: run a mode over a labelled dataset and write report.json, report.md and
plots. All classes are evaluated together (per-folder runs make precision trivially 1); the user's
files are only read."""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from handler.core.moderator import Moderator
from handler.evaluation import metrics
from handler.evaluation.calibrate import calibrate_to_file, check_target
from handler.evaluation.datasets import Sample, from_feedback, label_counts, load_dataset
from handler.evaluation.embed_dataset import EmbeddedSet, embed_samples
from handler.evaluation.embedding_cache import EmbeddingCache
from handler.evaluation.modes import HeadMode, Mode, PolicyMode, Scored, ZeroShot
from handler.evaluation.options import EvaluateOptions
from handler.exceptions import InputError
from handler.feedback import read_feedback

CURVE_POINTS = 200  # points of each curve kept in report.json (the plots use all of them)


def collect_samples(
    dataset: Path | None, feedback: list[str], feedback_images: list[Path]
) -> tuple[list[Sample], list[str]]:
    """The dataset's samples then the feedback's (latest correction per image); unresolved record ids."""
    samples = load_dataset(dataset) if dataset is not None else []
    records = [r for source in feedback for r in read_feedback(source)]
    roots = [*feedback_images, *([dataset] if dataset is not None and dataset.is_dir() else [])]
    extra = from_feedback(records, roots)
    if not samples and not extra.samples:
        raise InputError("no labelled images: give a DATASET and/or --feedback with resolvable images")
    return samples + extra.samples, extra.unresolved


def build_mode(mod: Moderator, options: EvaluateOptions, labels: list[str]) -> Mode:
    if options.head is not None:
        from handler.core.heads import load_head_for

        head = load_head_for(options.head, mod.model_id, mod.backbone_fingerprint)
        return HeadMode(head, options.threshold)
    if options.policy is not None:
        from handler.core.policy import load_policy_file

        path = Path(options.policy)
        policy = load_policy_file(path) if path.is_file() else mod.policy(options.policy)
        return PolicyMode(mod, policy)
    return ZeroShot(mod, options.classes or labels, options.threshold)


def check_outside(out: Path, dataset: Path | None) -> None:
    if dataset is not None and dataset.is_dir() and out.resolve().is_relative_to(dataset.resolve()):
        raise InputError(f"--out {out} is inside the dataset {dataset}; write the report elsewhere")


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _thin(values: np.ndarray[Any, Any]) -> list[float]:
    keep = np.unique(np.linspace(0, len(values) - 1, min(len(values), CURVE_POINTS)).astype(int))
    return [round(float(v), 6) for v in values[keep]] if len(values) else []


def curves(y: np.ndarray[Any, Any], s: np.ndarray[Any, Any], options: EvaluateOptions) -> dict[str, Any]:
    """ROC, precision-recall and the threshold sweep for one positive class, and the operating point."""
    if y.all() or not y.any():
        return {"available": False, "reason": "needs images both of the positive class and of others"}
    fpr, tpr, _ = metrics.roc_curve(y, s)
    precision, recall, _ = metrics.precision_recall_curve(y, s)
    sweep = metrics.threshold_sweep(y, s)
    point = metrics.pick_threshold(sweep, target_recall=options.target_recall, target_fpr=options.target_fpr)
    return {
        "available": True,
        "roc_auc": metrics.auc(fpr, tpr),
        "average_precision": metrics.average_precision(y, s),
        "operating_point": asdict(point) if point else None,
        "roc": {"fpr": _thin(fpr), "tpr": _thin(tpr)},
        "precision_recall": {"precision": _thin(precision), "recall": _thin(recall)},
        "sweep": {k: _thin(v) for k, v in sweep.items()},
        "_full": {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall, "sweep": sweep},
    }


def choose_positive(requested: str | None, scored: Scored, labels: list[str]) -> str:
    if requested is not None:
        if requested not in scored.classes:
            raise InputError(f"--positive {requested!r} is not a class; classes: {', '.join(scored.classes)}")
        return requested
    for candidate in [*scored.flagged, "nsfw"]:
        if candidate in labels:
            return candidate
    return labels[0]


def listing(embedded: EmbeddedSet, scored: Scored, want: str) -> list[dict[str, Any]]:
    rows = []
    for i, item in enumerate(embedded.items):
        predicted = scored.predictions[i]
        wrong = predicted != item.sample.label
        if (want == "unknown" and predicted == metrics.UNKNOWN) or (
            want == "wrong" and wrong and predicted != metrics.UNKNOWN
        ):
            top = int(scored.probabilities[i].argmax())
            rows.append(
                {
                    "ref": item.sample.ref,
                    "label": item.sample.label,
                    "predicted": predicted,
                    "top": scored.classes[top],
                    "probability": round(float(scored.probabilities[i, top]), 4),
                }
            )
    return rows


def evaluate(mod: Moderator, options: EvaluateOptions) -> dict[str, Any]:
    started = time.perf_counter()
    check_outside(options.out, options.dataset)
    if options.write_policy is not None:
        if options.policy is None:
            raise InputError("--write-policy needs --policy: calibration writes that policy's thresholds")
        check_target(options.write_policy)
    samples, unresolved = collect_samples(options.dataset, options.feedback, options.feedback_images)
    labels = sorted({s.label for s in samples})
    mode = build_mode(mod, options, labels)
    classes = list(dict.fromkeys(options.mapping.get(c, c) for c in mode.describe()["classes"]))
    missing = [label for label in labels if label not in classes]
    if missing:
        raise InputError(
            f"dataset labels {missing} are not classes of the {mode.kind} model ({', '.join(classes)}); "
            "name them with --classes, or map model classes onto them with --map CLASS=LABEL"
        )
    cache = None
    if options.cache_dir is not None:
        cache = EmbeddingCache(options.cache_dir, mod.backbone_fingerprint, mod.encoder.precision.value)
    embedded = embed_samples(
        mod, samples, batch_size=options.batch_size, cache=cache, progress=options.progress
    ).with_dataset_precedence()
    if not embedded.items:
        raise InputError(f"none of the {len(samples)} images could be read: {embedded.skipped[:3]}")
    scored = mode.score(embedded.embeddings, options.mapping)
    y_true = embedded.labels
    warnings = evaluation_warnings(options, mode, scored, y_true, embedded, unresolved)
    positive = choose_positive(options.positive, scored, labels)
    y = np.array([t == positive for t in y_true])
    curve = curves(y, scored.probabilities[:, scored.classes.index(positive)], options)
    timings = np.array(embedded.timings_ms)
    report: dict[str, Any] = {
        "dataset": {
            "source": str(options.dataset) if options.dataset else None,
            "feedback": options.feedback,
            "images": len(embedded.items),
            "labels": label_counts(e.sample for e in embedded.items),
            "from_feedback": sum(1 for e in embedded.items if e.sample.origin == "feedback"),
            "feedback_on_dataset_images": embedded.feedback_duplicates,
            "feedback_conflicts": embedded.conflicts,
            "feedback_unresolved": unresolved,
            "skipped": embedded.skipped,
        },
        "model": {
            "id": mod.model_id,
            "fingerprint": mod.backbone_fingerprint,
            "runtime": mod.encoder.runtime.value,
            "precision": mod.encoder.precision.value,
        },
        "mode": {**mode.describe(), "map": options.mapping, "flagged_classes": scored.flagged},
        "metrics": metrics.classification_report(y_true, scored.predictions, scored.classes),
        "positive_class": positive,
        "curves": curve,
        "timing": {
            "images_timed": int(timings.size),
            "from_cache": embedded.cached,
            "batch_size": options.batch_size,
            "mean_ms_per_image": round(float(timings.mean()), 3) if timings.size else None,
            "p95_ms_per_image": round(float(np.percentile(timings, 95)), 3) if timings.size else None,
            "total_s": None,
        },
        "memory": {"peak_rss_mib": round(peak_rss_mib(), 1)},
        "misclassified": listing(embedded, scored, "wrong"),
        "unknown": listing(embedded, scored, "unknown"),
        "warnings": warnings,
    }
    if options.write_policy is not None:
        report["calibration"] = calibrate_to_file(mode, scored, y_true, options)
    report["timing"]["total_s"] = round(time.perf_counter() - started, 3)
    write_report(report, options.out)
    return report


def evaluation_warnings(
    options: EvaluateOptions,
    mode: Mode,
    scored: Scored,
    y_true: list[str],
    embedded: EmbeddedSet,
    unresolved: list[str],
) -> list[str]:
    warnings = []
    threshold = mode.threshold
    if threshold is not None and threshold <= 1 / len(scored.classes):
        warnings.append(
            f"threshold {threshold} can never give 'unknown': with {len(scored.classes)} classes the top "
            f"probability is always at least 1/{len(scored.classes)} = {1 / len(scored.classes):.3f}"
        )
    present = set(y_true)
    if len(present) == 1:
        warnings.append(
            f"only one true label ({next(iter(present))}): its precision is trivially 1.0 and no false "
            "positives can be counted; evaluate all classes together"
        )
    absent = [c for c in scored.classes if c not in present]
    if absent:
        warnings.append(f"classes with no images in the dataset (their recall is undefined): {absent}")
    if embedded.skipped:
        warnings.append(f"{len(embedded.skipped)} image(s) could not be read and were skipped")
    if unresolved:
        warnings.append(f"{len(unresolved)} feedback record(s) name images that could not be found")
    if embedded.conflicts:
        warnings.append(
            f"{len(embedded.conflicts)} feedback record(s) disagree with the dataset's label; the dataset's "
            "label was kept (see dataset.feedback_conflicts)"
        )
    return warnings


def write_report(report: dict[str, Any], out: Path) -> None:
    from handler.evaluation.report_markdown import markdown_report
    from handler.evaluation.report_plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    full = report["curves"].pop("_full", None)
    report["files"] = write_plots(report, full, out)
    report["files"] += ["report.json", "report.md"]
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown_report(report))
