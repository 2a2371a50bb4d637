"""Calibration: per-category thresholds chosen on labelled data, written as a new policy file.

For each category that can be flagged, its own probability is swept against "the image's label is this
category's label" (one-vs-rest, the rule the policy applies: flag at or above the threshold), and the
threshold meeting the target is kept: the highest one reaching the target recall (default 0.95), or the
lowest one keeping the false-positive rate at or below the target. Categories without both positive and
negative images keep their threshold.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from handler.core.policy import Category, Policy
from handler.evaluation import metrics
from handler.evaluation.modes import Mode, PolicyMode, Scored
from handler.evaluation.options import EvaluateOptions
from handler.exceptions import InputError

DEFAULT_RECALL = 0.95


def check_target(path: Path) -> None:
    if path.exists():
        raise InputError(f"{path} exists; calibration writes a new policy file, choose another name")
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise InputError(f"{path}: a policy file ends in .yaml, .yml or .json")


def calibrate(
    policy: Policy,
    scored: Scored,
    y_true: list[str],
    mapping: dict[str, str],
    target_recall: float | None,
    target_fpr: float | None,
) -> tuple[Policy, list[dict[str, Any]]]:
    truth = np.array(y_true)
    categories: list[Category] = []
    changes: list[dict[str, Any]] = []
    for j, category in enumerate(policy.categories):
        label = mapping.get(category.name, category.name)
        positives = truth == label
        if category.safe or positives.all() or not positives.any():
            categories.append(category)
            if not category.safe:
                changes.append(
                    {"category": category.name, "kept": category.threshold, "reason": "no contrast"}
                )
            continue
        sweep = metrics.threshold_sweep(positives, scored.raw_probabilities[:, j])
        recall = DEFAULT_RECALL if target_recall is None and target_fpr is None else target_recall
        point = metrics.pick_threshold(sweep, target_recall=recall, target_fpr=target_fpr)
        assert point is not None  # both classes are present, so the sweep is not empty
        # Rounded in the direction that keeps the target: down for recall, up for the FPR.
        rounded = (
            math.ceil(point.threshold * 1e4) if target_fpr is not None else math.floor(point.threshold * 1e4)
        )
        threshold = min(1.0, max(0.0, rounded / 1e4))
        categories.append(category.model_copy(update={"threshold": threshold}))
        changes.append(
            {
                "category": category.name,
                "label": label,
                "old": category.threshold,
                "new": threshold,
                "target": point.target,
                "met": point.met,
                "precision": round(point.precision, 4),
                "recall": round(point.recall, 4),
                "false_positive_rate": round(point.false_positive_rate, 4),
            }
        )
    return policy.model_copy(update={"categories": tuple(categories)}), changes


def policy_document(policy: Policy, target: Path, note: str) -> dict[str, Any]:
    """The policy as data, with head paths made relative to the new file's folder."""
    data = policy.model_dump(mode="json")
    base = target.absolute().parent
    for entry in [*data["categories"], *data.get("scores", [])]:
        if entry.get("head"):
            entry["head"] = os.path.relpath(entry["head"], base)
    data["description"] = f"{policy.description} {note}".strip()
    return data


def calibrate_to_file(
    mode: Mode, scored: Scored, y_true: list[str], options: EvaluateOptions
) -> dict[str, Any]:
    assert isinstance(mode, PolicyMode)  # checked before the run
    assert options.write_policy is not None
    target = options.write_policy
    check_target(target)
    policy, changes = calibrate(
        mode.policy, scored, y_true, options.mapping, options.target_recall, options.target_fpr
    )
    goal = (
        f"fpr <= {options.target_fpr}"
        if options.target_fpr is not None
        else (f"recall >= {options.target_recall or DEFAULT_RECALL}")
    )
    note = f"(thresholds calibrated by `evaluate` on {options.dataset or 'feedback'} for {goal})"
    data = policy_document(policy, target, note)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = (
        json.dumps(data, indent=2) + "\n"
        if target.suffix.lower() == ".json"
        else yaml.safe_dump(data, sort_keys=False)
    )
    target.write_text(text)
    return {
        "policy_file": str(target),
        "policy": f"{policy.name}@{policy.fingerprint}",
        "categories": changes,
    }
