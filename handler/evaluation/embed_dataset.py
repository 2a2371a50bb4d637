"""Embed every sample of a dataset once: read, hash, reuse the cache or decode and run the image tower
in batches, with a progress bar and a per-image time. Unreadable images are listed, never fatal."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from handler.core.moderator import Moderator
from handler.evaluation.datasets import Sample, read_sample
from handler.evaluation.embedding_cache import EmbeddingCache
from handler.exceptions import InputError
from handler.inputs.images import ImageLimits, decode_still


@dataclass(frozen=True)
class Embedded:
    sample: Sample
    sha256: str
    ms: float | None  # read + decode + its share of the batch's forward pass; None when from the cache


@dataclass
class EmbeddedSet:
    items: list[Embedded]
    embeddings: npt.NDArray[np.float32]  # (N, D) unit image embeddings, one row per item
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"ref", "error"}
    cached: int = 0
    feedback_duplicates: int = 0  # feedback on a dataset image (same bytes): the dataset's label is kept
    conflicts: list[dict[str, str]] = field(default_factory=list)  # ... and a different label was asked

    def with_dataset_precedence(self) -> EmbeddedSet:
        """Curated labels win: a feedback sample whose image (same bytes) is in the dataset is dropped,
        and if it asked for another label, the disagreement is listed (never applied silently)."""
        curated = {e.sha256: e for e in self.items if e.sample.origin != "feedback"}
        keep, conflicts = [], []
        for i, item in enumerate(self.items):
            dataset = curated.get(item.sha256) if item.sample.origin == "feedback" else None
            if dataset is None:
                keep.append(i)
            elif dataset.sample.label != item.sample.label:
                conflicts.append(
                    {
                        "image": dataset.sample.ref,
                        "dataset_label": dataset.sample.label,
                        "feedback_label": item.sample.label,
                        "feedback_ref": item.sample.ref,
                    }
                )
        return EmbeddedSet(
            items=[self.items[i] for i in keep],
            embeddings=self.embeddings[keep],
            skipped=self.skipped,
            cached=self.cached,
            feedback_duplicates=len(self.items) - len(keep),
            conflicts=conflicts,
        )

    @property
    def labels(self) -> list[str]:
        return [e.sample.label for e in self.items]

    @property
    def timings_ms(self) -> list[float]:
        return [e.ms for e in self.items if e.ms is not None]


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="embedding", disable=None if enabled else True)


def embed_samples(
    mod: Moderator,
    samples: Sequence[Sample],
    *,
    batch_size: int = 16,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
) -> EmbeddedSet:
    items: list[Embedded] = []
    rows: list[npt.NDArray[np.float32]] = []
    skipped: list[dict[str, str]] = []
    cached = 0
    limits = ImageLimits.from_settings(mod.settings)
    bar = _progress(len(samples), progress)
    try:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            loaded: list[tuple[Sample, str, bytes, float]] = []
            for sample in chunk:
                began = time.perf_counter()
                try:
                    data = read_sample(sample.ref, mod.settings)
                except (OSError, InputError) as exc:
                    skipped.append({"ref": sample.ref, "error": getattr(exc, "detail", None) or str(exc)})
                    continue
                loaded.append((sample, hashlib.sha256(data).hexdigest(), data, time.perf_counter() - began))
            hits = cache.get_many(sha for _, sha, _, _ in loaded) if cache is not None else {}
            todo: list[tuple[Sample, str, Image.Image, float]] = []
            for sample, sha, data, read_s in loaded:
                if sha in hits:
                    items.append(Embedded(sample, sha, None))
                    rows.append(hits[sha])
                    cached += 1
                    continue
                began = time.perf_counter()
                try:
                    image = decode_still(data, limits, mod.encoder.preprocess)
                except InputError as exc:
                    skipped.append({"ref": sample.ref, "error": exc.detail})
                    continue
                todo.append((sample, sha, image, read_s + time.perf_counter() - began))
            if todo:
                began = time.perf_counter()
                vectors = mod.embed([image for _, _, image, _ in todo]).astype(np.float32)
                share = (time.perf_counter() - began) / len(todo)
                for (sample, sha, _, own_s), vector in zip(todo, vectors, strict=True):
                    items.append(Embedded(sample, sha, (own_s + share) * 1000))
                    rows.append(vector)
                if cache is not None:
                    cache.put_many(
                        {sha: vector for (_, sha, _, _), vector in zip(todo, vectors, strict=True)}
                    )
            bar.update(len(chunk))
    finally:
        bar.close()
    dim = rows[0].shape[0] if rows else 0
    matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), dtype=np.float32)
    return EmbeddedSet(items, matrix, skipped, cached)
