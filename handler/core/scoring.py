"""Turning similarities into probabilities, predictions and policy verdicts (pure functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from handler.core.policy import Action, Policy
from handler.core.vectors import softmax
from handler.exceptions import InputError

UNKNOWN = "unknown"


class NonFiniteScores(InputError):
    """The model gave NaN or infinite scores for an image: never read as `allow` (an error verdict)."""

    status_code = 422


def probabilities(
    image_embeddings: np.ndarray, class_embeddings: np.ndarray, logit_scale: float
) -> np.ndarray:
    """CLIP's zero-shot rule: softmax over classes of logit_scale x cosine similarity. Shape (N, C)."""
    logits = np.float32(logit_scale) * (image_embeddings @ class_embeddings.T)
    return softmax(logits)


@dataclass(frozen=True)
class Classification:
    prediction: str
    probabilities: dict[str, float]


def classify_row(labels: list[str], row: np.ndarray, threshold: float | None) -> Classification:
    """The top label, or `unknown` when its probability is below `threshold`."""
    probs = {label: float(p) for label, p in zip(labels, row.tolist(), strict=True)}
    top = max(probs, key=probs.__getitem__)
    prediction = UNKNOWN if threshold is not None and probs[top] < threshold else top
    return Classification(prediction=prediction, probabilities=probs)


@dataclass(frozen=True)
class Decision:
    verdict: Action
    flagged: list[str]
    scores: dict[str, float]
    top: str
    top_score: float
    policy: Policy
    head_scores: dict[str, float] = field(default_factory=dict)  # the policy's score heads (e.g. aesthetics)


def judge(policy: Policy, row: np.ndarray, head_scores: dict[str, float] | None = None) -> Decision:
    """Most severe action among categories at or above their threshold; nothing flagged -> allow."""
    scores = {c.name: float(p) for c, p in zip(policy.categories, row.tolist(), strict=True)}
    extra = head_scores or {}
    if not all(math.isfinite(v) for v in [*scores.values(), *extra.values()]):
        raise NonFiniteScores(
            "the model produced non-finite scores for this image; it cannot be judged (check the image, "
            "and the model and heads if every image does this)"
        )
    flagged = [c for c in policy.categories if not c.safe and scores[c.name] >= c.threshold]
    verdict = max((c.action for c in flagged), key=lambda a: a.severity, default=Action.allow)
    top = max(scores, key=scores.__getitem__)
    return Decision(
        verdict=verdict,
        flagged=[c.name for c in sorted(flagged, key=lambda c: -scores[c.name])],
        scores=scores,
        top=top,
        top_score=scores[top],
        policy=policy,
        head_scores=extra,
    )
