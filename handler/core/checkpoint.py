"""The forms a transformers CLIP checkpoint comes in, and loading its weights without running its code.

Weights: `model.safetensors`, `pytorch_model.bin`, or either one sharded with an `*.index.json`. A pickled
`.bin` is read with `torch.load(weights_only=True)` only: a checkpoint that needs anything but tensors
to unpickle is refused, never executed. Tokenizer: the fast `tokenizer.json` or the slow `vocab.json` +
`merges.txt` (handler/core/tokenizer.py reads both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handler.exceptions import ConfigurationError

if TYPE_CHECKING:
    import torch

SAFETENSORS = "model.safetensors"
PICKLE = "pytorch_model.bin"
#: Files inference may need besides the weights (config, processor and tokenizer in either form).
SIDE_FILES = (
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)


@dataclass(frozen=True)
class Weights:
    """Where a checkpoint's weights are: one or more files of one format."""

    files: tuple[Path, ...]
    safetensors: bool

    @property
    def stamp(self) -> dict[str, int]:
        """Changes whenever any weights file is rewritten (size, or modification time)."""
        stats = [f.stat() for f in self.files]
        return {"size": sum(s.st_size for s in stats), "mtime_ns": max(s.st_mtime_ns for s in stats)}


def find_weights(model_dir: Path) -> Weights | None:
    """The checkpoint's weights, safetensors preferred (as transformers does); None when there are none."""
    for name, safe in ((SAFETENSORS, True), (PICKLE, False)):
        if (model_dir / name).is_file():
            return Weights((model_dir / name,), safe)
        index = model_dir / f"{name}.index.json"
        if index.is_file():
            try:
                shard_names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                raise ConfigurationError(f"{index} is not a valid weights index ({exc})") from exc
            shards = tuple(model_dir / Path(s).name for s in shard_names)  # never outside the directory
            missing = [s.name for s in shards if not s.is_file()]
            if missing:
                raise ConfigurationError(f"{index} names shards that are missing: {', '.join(missing)}")
            return Weights(shards, safe)
    return None


def require_weights(model_dir: Path) -> Weights:
    weights = find_weights(model_dir)
    if weights is None:
        raise ConfigurationError(
            f"{model_dir} has no weights: expected {SAFETENSORS} or {PICKLE} (or a sharded index of either)"
        )
    return weights


def has_tokenizer(model_dir: Path) -> bool:
    return (model_dir / "tokenizer.json").is_file() or (
        (model_dir / "vocab.json").is_file() and (model_dir / "merges.txt").is_file()
    )


def download(model_id: str) -> Path:
    """A hub checkpoint's inference files (safetensors when published, else the pickle); offline, from the
    Hugging Face cache when HF_HUB_OFFLINE is set."""
    from huggingface_hub import snapshot_download

    path = Path("")
    for weights in (SAFETENSORS, PICKLE):
        stem, suffix = weights.rsplit(".", 1)
        patterns = [*SIDE_FILES, weights, f"{weights}.index.json", f"{stem}-*.{suffix}"]
        path = Path(snapshot_download(model_id, allow_patterns=patterns))
        if find_weights(path) is not None:
            break
    return path


def load_state_dict(weights: Weights) -> dict[str, torch.Tensor]:
    """All tensors by name. `.bin` files are unpickled with weights_only=True: tensors and plain
    containers only, so a pickle carrying code fails here instead of running."""
    import pickle

    import torch

    state: dict[str, torch.Tensor] = {}
    for path in weights.files:
        if weights.safetensors:
            from safetensors.torch import load_file

            state.update(load_file(str(path)))
            continue
        try:
            loaded: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
            raise ConfigurationError(
                f"{path} is not a plain tensor checkpoint, so it was not loaded (only weights are read from "
                f"a .bin, never code: {str(exc).splitlines()[0]}); convert it to {SAFETENSORS} where it "
                "was made, with `save_pretrained(dir, safe_serialization=True)`."
            ) from exc
        if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, dict) or not all(isinstance(t, torch.Tensor) for t in loaded.values()):
            raise ConfigurationError(f"{path} does not hold a mapping of tensor names to tensors")
        state.update(loaded)
    return state


def load_clip_model(model_dir: Path) -> Any:
    """transformers' `CLIPModel` in fp32, eval mode, from the weights read above (offline)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    weights = require_weights(model_dir)
    config = CLIPConfig.from_pretrained(model_dir, local_files_only=True)
    state = load_state_dict(weights)
    model = CLIPModel.from_pretrained(None, config=config, state_dict=state, dtype=torch.float32)
    return model.eval()
