"""Random-weight CLIP checkpoints made offline, for tests (tiny) and benchmarks (ViT-B/32 sizes).

They go through exactly the same loading code as a real checkpoint: a transformers `CLIPModel` saved as
safetensors, a CLIP BPE tokenizer built from a byte-level vocabulary, and a `CLIPImageProcessor`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

Size = Literal["tiny", "base"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def write_tokenizer_files(out: Path) -> int:
    """A valid CLIP BPE vocabulary (all bytes, word-final variants, a few merges). Returns its size."""
    symbols = list(_bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("o", "n</w>"), ("e", "r</w>")]
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab_list))}
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    return len(vocab)


def make_random_checkpoint(out: Path, size: Size = "tiny", seed: int = 0) -> Path:
    """Write a random-weight CLIP checkpoint to `out` and return it."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer, CLIPTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer_files(out)
    special = {"bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1, "pad_token_id": vocab_size - 1}
    if size == "tiny":
        image_size = 64
        config = CLIPConfig(
            text_config={
                "vocab_size": vocab_size,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "max_position_embeddings": 77,
                **special,
            },
            vision_config={
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": image_size,
                "patch_size": 16,
            },
            projection_dim=16,
        )
    else:
        image_size = 224
        config = CLIPConfig(text_config=special)  # ViT-B/32 sizes: what timing work measures
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    slow = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
    slow.save_pretrained(out)
    CLIPTokenizerFast.from_pretrained(out).save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(out)
    (out / "MODEL_ID").write_text(f"random-clip-{size}\n")
    return out
