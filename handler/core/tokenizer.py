"""CLIP's BPE tokenizer from the checkpoint's `tokenizer.json`, with the `tokenizers` library alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer

from handler.exceptions import ConfigurationError


class ClipTokenizer:
    """Texts -> fixed-length (N, L) ids and attention mask, padded with the checkpoint's pad token."""

    def __init__(self, model_dir: Path, length: int) -> None:
        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise ConfigurationError(
                f"{model_dir} has no tokenizer.json; re-create it with `python -m handler bake`."
            )
        self.length = length
        self._tokenizer = Tokenizer.from_file(str(path))
        pad_token = _pad_token(model_dir)
        pad_id = self._tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ConfigurationError(f"the pad token {pad_token!r} is not in {path}")
        self._tokenizer.enable_truncation(max_length=length)
        self._tokenizer.enable_padding(length=length, pad_id=pad_id, pad_token=pad_token)

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        return ids, mask


def _pad_token(model_dir: Path) -> str:
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = model_dir / name
        if path.is_file():
            pad = json.loads(path.read_text()).get("pad_token")
            if isinstance(pad, dict):
                pad = pad.get("content")
            if isinstance(pad, str):
                return pad
    return "<|endoftext|>"
