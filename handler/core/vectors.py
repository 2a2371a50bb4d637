"""The two numpy operations on embeddings the core needs (torch's `normalize` and `softmax`)."""

from __future__ import annotations

import numpy as np


def unit(features: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, in float32 (as torch's `normalize`: a zero row stays zero)."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    result: np.ndarray = features / np.maximum(norms, np.float32(1e-12))
    return result


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so that large logits cannot overflow."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result
