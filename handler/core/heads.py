"""Trained heads on CLIP image embeddings: a classifier (linear probe) or a score regressor (0-10, ...).

A head is one small safetensors file: the weights (input standardisation, then linear layers with ReLU
between them) and, in the file's metadata, a JSON document saying what it is: kind, labels or score
range, the backbone it was trained on (model id, embedding size and weights fingerprint), the
preprocessing and the training metrics. Serving needs numpy and safetensors only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handler.core.vectors import softmax
from handler.exceptions import ConfigurationError

HEAD_FORMAT = "clip-moderation-head/1"
METADATA_KEY = "head"


class HeadKind(StrEnum):
    classifier = "classifier"
    regressor = "regressor"


class Backbone(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_id: str
    fingerprint: str = Field(description="backbone_fingerprint() of the checkpoint the head was trained on.")
    embedding_dim: int = Field(gt=0)


class HeadMetadata(BaseModel):
    """The JSON document stored in the head file's safetensors metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["clip-moderation-head/1"] = "clip-moderation-head/1"
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: HeadKind
    architecture: Literal["linear", "mlp"]
    layers: int = Field(ge=1)
    labels: tuple[str, ...] = ()
    score_range: tuple[float, float] | None = None
    backbone: Backbone
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Head:
    """A loaded head: `predict` maps (N, D) unit image embeddings to probabilities or scores."""

    meta: HeadMetadata
    tensors: dict[str, np.ndarray]
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def kind(self) -> HeadKind:
        return self.meta.kind

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    def __post_init__(self) -> None:
        problem = _shape_problem(self.meta, self.tensors)
        if problem:
            raise ConfigurationError(f"Head {self.path or self.meta.name} is malformed: {problem}")

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Classifier: (N, C) probabilities over `labels`. Regressor: (N,) scores within `score_range`."""
        x = (np.asarray(embeddings, dtype=np.float32) - self.tensors["input.mean"]) / self.tensors[
            "input.scale"
        ]
        for i in range(self.meta.layers):
            x = x @ self.tensors[f"layers.{i}.weight"].T + self.tensors[f"layers.{i}.bias"]
            if i < self.meta.layers - 1:
                x = np.maximum(x, 0)
        if self.kind is HeadKind.classifier:
            return softmax(x)
        scores: np.ndarray = x[:, 0]
        if self.meta.score_range is not None:
            low, high = self.meta.score_range
            scores = np.clip(scores, low, high)
        return scores

    def check_backbone(self, model_id: str, fingerprint: str) -> None:
        """Refuse a head trained on other weights: its outputs would be meaningless."""
        trained = self.meta.backbone
        if trained.fingerprint != fingerprint:
            raise ConfigurationError(
                f"Head {self.path or self.name} was trained on backbone {trained.model_id} (weights "
                f"fingerprint {trained.fingerprint}), but the loaded model is {model_id} (fingerprint "
                f"{fingerprint}); retrain it on this model with `python -m handler train-head`."
            )

    def save(self, path: Path) -> Path:
        from safetensors.numpy import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: np.ascontiguousarray(t, dtype=np.float32) for name, t in self.tensors.items()}
        save_file(tensors, str(path), metadata={METADATA_KEY: self.meta.model_dump_json()})
        return path


def _shape_problem(meta: HeadMetadata, tensors: dict[str, np.ndarray]) -> str | None:
    dim = meta.backbone.embedding_dim
    for name in ("input.mean", "input.scale"):
        if name not in tensors or tuple(tensors[name].shape) != (dim,):
            return f"{name} must have shape ({dim},)"
    width = dim
    for i in range(meta.layers):
        weight, bias = tensors.get(f"layers.{i}.weight"), tensors.get(f"layers.{i}.bias")
        if weight is None or bias is None or weight.ndim != 2 or weight.shape[1] != width:
            return f"layer {i} must be an (out, {width}) weight with a bias"
        if tuple(bias.shape) != (weight.shape[0],):
            return f"layer {i}'s bias must have shape ({weight.shape[0]},)"
        width = int(weight.shape[0])
    if meta.kind is HeadKind.classifier:
        if len(meta.labels) < 2 or len(set(meta.labels)) != len(meta.labels):
            return "a classifier needs at least two distinct labels"
        if width != len(meta.labels):
            return f"the last layer has {width} outputs for {len(meta.labels)} labels"
    elif width != 1:
        return f"a regressor's last layer must have 1 output, not {width}"
    return None


def load_head(path: Path) -> Head:
    """Read a head file; errors say which file and what is wrong with it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
            if raw is None:  # before reading any tensor: this may be a whole checkpoint
                raise ConfigurationError(
                    f"{path} is not a head file (no '{METADATA_KEY}' metadata); make one with train-head"
                )
            tensors = {name: handle.get_tensor(name).astype(np.float32) for name in handle.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as exc:
        raise ConfigurationError(f"Cannot read head file {path}: {exc}") from exc
    try:
        meta = HeadMetadata.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ConfigurationError(f"Head file {path} has invalid metadata: {exc}") from exc
    return Head(meta=meta, tensors=tensors, path=path)


def load_head_for(path: Path, model_id: str, fingerprint: str) -> Head:
    head = load_head(path)
    head.check_backbone(model_id, fingerprint)
    return head
