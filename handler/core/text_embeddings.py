"""Text embeddings saved at bake time beside the weights, so no request (and no start-up) computes them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

FILE_NAME = "text_embeddings.safetensors"


def save_text_embeddings(model_dir: Path, groups: Mapping[tuple[str, ...], np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    tensors = {str(i): np.ascontiguousarray(emb, dtype=np.float32) for i, emb in enumerate(groups.values())}
    metadata = {"texts": json.dumps([list(texts) for texts in groups])}
    path = model_dir / FILE_NAME
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_text_embeddings(model_dir: Path) -> dict[tuple[str, ...], np.ndarray]:
    """The saved groups, or nothing when the checkpoint was not baked."""
    path = model_dir / FILE_NAME
    if not path.is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        texts = json.loads(handle.metadata()["texts"])
        return {tuple(group): handle.get_tensor(str(i)) for i, group in enumerate(texts)}
