"""What `evaluate` runs over the embeddings: zero-shot classes, a policy, or a trained classifier head.

Each mode turns (N, D) embeddings into class probabilities and one prediction per image (`unknown` when
the rule abstains). An optional class map folds model classes into the dataset's labels (probabilities
of classes mapped to one label are summed, as they are softmax outputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from handler.core.heads import Head, HeadKind
from handler.core.moderator import Moderator
from handler.core.policy import Policy
from handler.core.scoring import probabilities
from handler.evaluation.metrics import UNKNOWN

FloatMatrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scored:
    classes: list[str]  # dataset-label space (after the class map)
    probabilities: FloatMatrix  # (N, len(classes))
    predictions: list[str]  # a class or `unknown`
    raw_classes: list[str]  # the model's own classes
    raw_probabilities: FloatMatrix  # (N, len(raw_classes))
    flagged: list[str] = field(default_factory=list)  # classes a policy can flag (empty: all count)


def group(
    raw: FloatMatrix, raw_classes: list[str], mapping: Mapping[str, str]
) -> tuple[list[str], FloatMatrix]:
    """Sum the columns of classes that map to the same label."""
    classes = list(dict.fromkeys(mapping.get(c, c) for c in raw_classes))
    grouped = np.zeros((raw.shape[0], len(classes)))
    for j, name in enumerate(raw_classes):
        grouped[:, classes.index(mapping.get(name, name))] += raw[:, j]
    return classes, grouped


def top_or_unknown(classes: list[str], probs: FloatMatrix, threshold: float | None) -> list[str]:
    """The most probable class, or `unknown` when its probability is below `threshold`."""
    best = probs.argmax(axis=1)
    return [
        UNKNOWN if threshold is not None and probs[i, j] < threshold else classes[j]
        for i, j in enumerate(best)
    ]


class ZeroShot:
    kind = "zero-shot"

    def __init__(self, mod: Moderator, labels: list[str], threshold: float | None) -> None:
        self.mod, self.labels, self.threshold = mod, labels, threshold

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": self.labels, "threshold": self.threshold}

    def score(self, embeddings: np.ndarray, mapping: Mapping[str, str]) -> Scored:
        text = self.mod.text_cache.texts(self.labels)
        raw = probabilities(embeddings, text, self.mod.encoder.logit_scale).astype(np.float64)
        classes, grouped = group(raw, self.labels, mapping)
        return Scored(classes, grouped, top_or_unknown(classes, grouped, self.threshold), self.labels, raw)


class HeadMode:
    kind = "head"

    def __init__(self, head: Head, threshold: float | None) -> None:
        if head.kind is not HeadKind.classifier:
            raise ValueError("evaluate takes a classifier head")
        self.head, self.threshold = head, threshold

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "head": str(self.head.path),
            "name": self.head.name,
            "classes": list(self.head.labels),
            "threshold": self.threshold,
        }

    def score(self, embeddings: np.ndarray, mapping: Mapping[str, str]) -> Scored:
        raw = self.head.predict(embeddings).astype(np.float64)
        labels = list(self.head.labels)
        classes, grouped = group(raw, labels, mapping)
        return Scored(classes, grouped, top_or_unknown(classes, grouped, self.threshold), labels, raw)


class PolicyMode:
    """Prediction: the most probable flagged category; if none, the top category when it is a safe one;
    else `unknown` (the top category is below its threshold: neither flagged nor clearly safe)."""

    kind = "policy"
    threshold = None

    def __init__(self, mod: Moderator, policy: Policy) -> None:
        self.mod, self.policy = mod, policy
        mod.heads.check(policy)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "policy": self.policy.policy_id,
            "classes": [c.name for c in self.policy.categories],
            "thresholds": {c.name: c.threshold for c in self.policy.categories if not c.safe},
        }

    def score(self, embeddings: np.ndarray, mapping: Mapping[str, str]) -> Scored:
        decisions = self.mod.judge_embeddings(embeddings, self.policy)
        names = [c.name for c in self.policy.categories]
        safe = {c.name for c in self.policy.categories if c.safe}
        raw = np.array([[d.scores[n] for n in names] for d in decisions], dtype=np.float64).reshape(
            -1, len(names)
        )
        predicted = [d.flagged[0] if d.flagged else (d.top if d.top in safe else UNKNOWN) for d in decisions]
        classes, grouped = group(raw, names, mapping)
        mapped = [p if p == UNKNOWN else mapping.get(p, p) for p in predicted]
        flagged = list(dict.fromkeys(mapping.get(n, n) for n in names if n not in safe))
        return Scored(classes, grouped, mapped, names, raw, flagged)


Mode = ZeroShot | HeadMode | PolicyMode
