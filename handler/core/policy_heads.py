"""Heads referenced by policies: loaded once, checked against the backbone, applied to the one embedding.

A policy's prompt categories are softmaxed together as always; a head category takes its head's
probability of `head_label`; a policy's `scores` are regressor outputs returned beside the verdict. Every
head reads the same (N, D) image embeddings the prompts are compared with: no second forward pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from handler.core.heads import Head, HeadKind, load_head
from handler.core.policy import Policy
from handler.core.scoring import probabilities
from handler.core.text_cache import TextEmbeddingCache
from handler.exceptions import ConfigurationError


def head_paths(policy: Policy) -> list[str]:
    paths = [c.head for c in policy.categories if c.head is not None]
    return list(dict.fromkeys([*paths, *(s.head for s in policy.scores)]))


class PolicyHeads:
    """Loads each head file once (on first use, or up front with `load_all`) and applies them."""

    def __init__(self, model_id: str, fingerprint: Callable[[], str]) -> None:
        self._model_id = model_id
        self._fingerprint = fingerprint
        self._heads: dict[str, Head] = {}
        self._lock = threading.Lock()

    def load_all(self, policies: Iterable[Policy]) -> None:
        """Load and check every head the policies name (start-up: a bad head fails it, not a request)."""
        for policy in policies:
            self.check(policy)

    def head(self, path: str) -> Head:
        with self._lock:
            head = self._heads.get(path)
            if head is None:
                head = load_head(Path(path))
                head.check_backbone(self._model_id, self._fingerprint())
                self._heads[path] = head
            return head

    def check(self, policy: Policy) -> None:
        """Every head of `policy` loads, fits this backbone, and is of the kind its use needs."""
        for category in policy.categories:
            if category.head is None:
                continue
            head = self.head(category.head)
            if head.kind is not HeadKind.classifier or category.head_label not in head.labels:
                raise ConfigurationError(
                    f"Policy {policy.name}, category {category.name}: head {category.head} must be a "
                    f"classifier with the label {category.head_label!r} (it is a {head.kind} with labels "
                    f"{list(head.labels)})."
                )
        for score in policy.scores:
            if self.head(score.head).kind is not HeadKind.regressor:
                raise ConfigurationError(
                    f"Policy {policy.name}, score {score.name}: head {score.head} must be a regressor."
                )

    def probabilities(
        self, embeddings: np.ndarray, policy: Policy, text_cache: TextEmbeddingCache, logit_scale: float
    ) -> np.ndarray:
        """(N, C) category probabilities in `policy.categories` order."""
        categories = policy.categories
        if all(c.head is None for c in categories):
            return probabilities(embeddings, text_cache.policy(policy), logit_scale)
        columns = np.empty((embeddings.shape[0], len(categories)), dtype=np.float32)
        prompted = [i for i, c in enumerate(categories) if c.prompts]
        if prompted:
            columns[:, prompted] = probabilities(embeddings, text_cache.policy(policy), logit_scale)
        outputs: dict[str, np.ndarray] = {}
        for i, category in enumerate(categories):
            if category.head is not None:
                head = self.head(category.head)
                if category.head not in outputs:
                    outputs[category.head] = head.predict(embeddings)
                columns[:, i] = outputs[category.head][:, head.labels.index(str(category.head_label))]
        return columns

    def scores(self, embeddings: np.ndarray, policy: Policy) -> list[dict[str, float]]:
        """Per image, the policy's score heads' outputs by score name (empty when it has none)."""
        values = {s.name: self.head(s.head).predict(embeddings).tolist() for s in policy.scores}
        return [{name: float(v[i]) for name, v in values.items()} for i in range(embeddings.shape[0])]
