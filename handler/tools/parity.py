"""How far a fast path (int8 or bf16 image tower) strays from fp32, on the caller's own images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from handler.core.model import ClipEncoder, Precision, load_encoder
from handler.core.policy import Policy
from handler.core.scoring import probabilities
from handler.core.text_cache import TextEmbeddingCache
from handler.settings import Settings


@dataclass(frozen=True)
class ParityReport:
    images: int
    precision: str
    cosine_min: float
    cosine_mean: float
    top1_agreement: float
    verdict_agreement: float | None
    max_probability_diff: float

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def load_pair(model_dir: Path | None, precision: Precision) -> tuple[ClipEncoder, ClipEncoder]:
    """The fp32 reference and the fast path, from the same checkpoint and runtime (int8: a baked
    directory's ONNX towers; bf16: a raw checkpoint's transformers towers)."""
    reference = load_encoder(Settings(model_dir=model_dir, inference_precision="fp32"))
    fast = load_encoder(Settings(model_dir=model_dir, inference_precision=precision.value))
    return reference, fast


def compare(
    reference: ClipEncoder,
    fast: ClipEncoder,
    images: Sequence[Image.Image],
    labels: Sequence[str],
    policy: Policy | None = None,
    batch_size: int = 16,
) -> ParityReport:
    """Embeddings, top-1 over `labels`, and (optionally) policy verdicts, fast path vs reference."""
    from handler.core.scoring import judge

    cache = TextEmbeddingCache(reference.encode_texts)
    label_embeddings = cache.texts(list(labels))
    ref_emb = np.concatenate(
        [reference.encode_images(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )
    fast_emb = np.concatenate(
        [fast.encode_images(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )
    cosines = (ref_emb * fast_emb).sum(axis=-1)
    ref_p = probabilities(ref_emb, label_embeddings, reference.logit_scale)
    fast_p = probabilities(fast_emb, label_embeddings, reference.logit_scale)
    top1 = float((ref_p.argmax(-1) == fast_p.argmax(-1)).mean())
    max_diff = float(np.abs(ref_p - fast_p).max())
    verdicts = None
    if policy is not None:
        from handler.core.fingerprint import backbone_fingerprint
        from handler.core.policy_heads import PolicyHeads

        heads = PolicyHeads(reference.model_id, lambda: backbone_fingerprint(reference.model_dir))
        scale = reference.logit_scale  # head categories are scored by their heads, prompts by CLIP
        ref_v = [judge(policy, r).verdict for r in heads.probabilities(ref_emb, policy, cache, scale)]
        fast_v = [judge(policy, r).verdict for r in heads.probabilities(fast_emb, policy, cache, scale)]
        verdicts = sum(a == b for a, b in zip(ref_v, fast_v, strict=True)) / len(ref_v)
    return ParityReport(
        images=len(images),
        precision=fast.precision.value,
        cosine_min=float(cosines.min()),
        cosine_mean=float(cosines.mean()),
        top1_agreement=top1,
        verdict_agreement=verdicts,
        max_probability_diff=max_diff,
    )
