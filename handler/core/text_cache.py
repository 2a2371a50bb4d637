"""Normalised text embeddings computed once per label set or policy, then reused (LRU)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from handler.core.policy import Policy
from handler.core.vectors import unit

TextEncoder = Callable[[Sequence[str]], np.ndarray]


class TextEmbeddingCache:
    """Maps a tuple of texts to their (N, D) unit embeddings; the text tower runs only on a miss."""

    def __init__(self, encode: TextEncoder, max_entries: int = 256) -> None:
        self._encode = encode
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self._ensembles: dict[tuple[tuple[str, ...], ...], np.ndarray] = {}  # one per policy in use
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        key = tuple(texts)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                return cached
        embeddings = self._encode(key)
        self.put(key, embeddings)
        return embeddings

    def put(self, texts: Sequence[str], embeddings: np.ndarray) -> None:
        with self._lock:
            self._entries[tuple(texts)] = embeddings
            self._entries.move_to_end(tuple(texts))
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def policy(self, policy: Policy) -> np.ndarray:
        """(C, D) class embeddings: per category, the normalised mean of its normalised prompt embeddings.
        Only prompt categories have a row (head categories are scored by their head)."""
        groups = tuple(c.prompts for c in policy.categories if c.prompts)
        if not groups:
            return np.empty((0, 0), dtype=np.float32)
        with self._lock:
            cached = self._ensembles.get(groups)
        if cached is not None:  # the per-request path: no averaging again
            return cached
        all_embeddings = self.texts([p for group in groups for p in group])
        rows, start = [], 0
        for group in groups:
            rows.append(all_embeddings[start : start + len(group)].mean(axis=0))
            start += len(group)
        matrix = unit(np.stack(rows))
        with self._lock:
            self._ensembles[groups] = matrix
        return matrix
