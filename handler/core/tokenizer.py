"""CLIP's BPE tokenizer with the `tokenizers` library alone, from either tokenizer form of a checkpoint.

The fast form is `tokenizer.json`. The slow form (`vocab.json` + `merges.txt`, what `CLIPTokenizer`
saves) is assembled here exactly as transformers' `CLIPConverter` assembles it, so both forms give the
same ids without importing transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

from handler.exceptions import ConfigurationError

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
#: `CLIPTokenizer` keeps at most this many merges (49152 tokens less the 256 bytes and 2 specials).
MAX_MERGES = 49152 - 256 - 2
_WORD_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


class ClipTokenizer:
    """Texts -> fixed-length (N, L) int64 ids and attention mask, padded with the checkpoint's pad token."""

    def __init__(self, model_dir: Path, length: int) -> None:
        fast = model_dir / "tokenizer.json"
        if fast.is_file():
            self._tokenizer = Tokenizer.from_file(str(fast))
        elif (model_dir / "vocab.json").is_file() and (model_dir / "merges.txt").is_file():
            self._tokenizer = tokenizer_from_vocab(model_dir)
        else:
            raise ConfigurationError(
                f"{model_dir} has no tokenizer: it needs tokenizer.json, or vocab.json and merges.txt "
                "(what CLIPTokenizer.save_pretrained writes)."
            )
        self.length = length
        pad_token = _special_token(model_dir, "pad_token", EOS)
        pad_id = self._tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ConfigurationError(f"the pad token {pad_token!r} is not in {model_dir}'s vocabulary")
        self._tokenizer.enable_truncation(max_length=length)
        self._tokenizer.enable_padding(length=length, pad_id=pad_id, pad_token=pad_token)

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(encodings), self.length)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(ids.shape)
        return ids, mask


def tokenizer_from_vocab(model_dir: Path) -> Tokenizer:
    """The fast tokenizer that `CLIPTokenizerFast.from_pretrained` converts from the slow files."""
    try:
        vocab: dict[str, int] = json.loads((model_dir / "vocab.json").read_text(encoding="utf-8"))
        lines = (model_dir / "merges.txt").read_text(encoding="utf-8").strip().split("\n")
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {model_dir}'s vocab.json / merges.txt ({exc})") from exc
    merges = [tuple(line.split()) for line in lines[1 : MAX_MERGES + 1]]  # line 0 is the version header
    if not isinstance(vocab, dict) or any(len(m) != 2 for m in merges):
        raise ConfigurationError(f"{model_dir}'s vocab.json or merges.txt is not a BPE vocabulary")
    specials = {
        name: _special_token(model_dir, name, default)
        for name, default in (("bos_token", BOS), ("eos_token", EOS), ("unk_token", EOS), ("pad_token", EOS))
    }
    missing = sorted({t for t in specials.values() if t not in vocab})
    if missing:
        raise ConfigurationError(f"{model_dir}'s vocab.json lacks the special tokens {missing}")
    tokenizer = Tokenizer(
        BPE(
            vocab=vocab,
            merges=[(a, b) for a, b in merges],
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
            unk_token=specials["unk_token"],
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_WORD_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.RobertaProcessing(
        sep=(specials["eos_token"], vocab[specials["eos_token"]]),
        cls=(specials["bos_token"], vocab[specials["bos_token"]]),
        add_prefix_space=False,
        trim_offsets=False,
    )
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in dict.fromkeys(specials.values())])
    return tokenizer


def _special_token(model_dir: Path, name: str, default: str) -> str:
    for file in ("special_tokens_map.json", "tokenizer_config.json"):
        path = model_dir / file
        if path.is_file():
            try:
                value = json.loads(path.read_text()).get(name)
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                return value
    return default
