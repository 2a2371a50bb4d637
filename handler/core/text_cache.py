"""Normalised text embeddings computed once per label set or policy, then reused (LRU)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

from handler.core.policy import Policy

TextEncoder = Callable[[Sequence[str]], torch.Tensor]


class TextEmbeddingCache:
    """Maps a tuple of texts to their (N, D) unit embeddings; the text tower runs only on a miss."""

    def __init__(self, encode: TextEncoder, max_entries: int = 256) -> None:
        self._encode = encode
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        key = tuple(texts)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                return cached
        embeddings = self._encode(key)
        self.put(key, embeddings)
        return embeddings

    def put(self, texts: Sequence[str], embeddings: torch.Tensor) -> None:
        with self._lock:
            self._entries[tuple(texts)] = embeddings
            self._entries.move_to_end(tuple(texts))
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def policy(self, policy: Policy) -> torch.Tensor:
        """(C, D) class embeddings: per category, the normalised mean of its normalised prompt embeddings.
        Only prompt categories have a row (head categories are scored by their head)."""
        prompted = [c for c in policy.categories if c.prompts]
        if not prompted:
            return torch.empty(0, 0)
        prompts = [p for c in prompted for p in c.prompts]
        all_embeddings = self.texts(prompts)
        rows, start = [], 0
        for category in prompted:
            end = start + len(category.prompts)
            rows.append(all_embeddings[start:end].mean(dim=0))
            start = end
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)
