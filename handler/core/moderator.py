"""The moderation core: one loaded model, cached text embeddings, policies; images in, verdicts out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image

from handler.core.fingerprint import backbone_fingerprint
from handler.core.model import ClipEncoder, load_encoder
from handler.core.policy import Policy, PolicySet
from handler.core.policy_heads import PolicyHeads
from handler.core.preprocess import to_pixel_values
from handler.core.provenance import JudgedBy, judged_by
from handler.core.scoring import Classification, Decision, classify_row, judge, probabilities
from handler.core.text_cache import TextEmbeddingCache
from handler.core.text_embeddings import load_text_embeddings
from handler.exceptions import InputError
from handler.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class Moderator:
    """Everything a request needs, built once per process."""

    def __init__(self, encoder: ClipEncoder, policies: PolicySet, settings: Settings) -> None:
        self.encoder = encoder
        self.policies = policies
        self.settings = settings
        self.heads = PolicyHeads(encoder.model_id, lambda: self.backbone_fingerprint)
        self.heads.load_all(policies)  # a missing head or one from another backbone fails start-up
        self.text_cache = TextEmbeddingCache(encoder.encode_texts, settings.text_cache_size)
        for texts, embeddings in load_text_embeddings(encoder.model_dir).items():  # baked at build time
            self.text_cache.put(texts, embeddings)
        for policy in policies:  # warm the cache so no request pays for policy prompts
            self.text_cache.policy(policy)
        self._judged_by: dict[str, JudgedBy] = {}

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    @property
    def backbone_fingerprint(self) -> str:
        """Hash of the image tower's weights; trained heads are bound to it (computed on first use)."""
        return backbone_fingerprint(self.encoder.model_dir)

    @property
    def precision(self) -> str:
        """The runtime and precision the image tower actually runs at (after any fallback)."""
        return f"{self.encoder.runtime}:{self.encoder.precision}"

    def judged_by(self, policy: Policy) -> JudgedBy:
        """The judged-by id of verdicts by `policy` on this model (computed once per policy)."""
        found = self._judged_by.get(policy.policy_id)
        if found is None:
            found = judged_by(
                policy,
                model_id=self.model_id,
                model_fingerprint=self.backbone_fingerprint,
                precision=self.precision,
                text_embeddings=self.text_cache.policy,
            )
            self._judged_by[policy.policy_id] = found
        return found

    def policy(self, name: str | None) -> Policy:
        policy = self.policies.get(name)
        if policy is None:
            raise InputError(f"unknown policy {name!r}; available: {', '.join(self.policies.names)}")
        return policy

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encoder.encode_images(images)

    def pixels(self, image: Image.Image) -> np.ndarray:
        """One image at the model's input size (1, 3, H, W): what a batch keeps until its forward pass."""
        return to_pixel_values([image], self.encoder.preprocess)

    def embed_pixels(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of images already at the model's input size (`pixels`), in one forward pass."""
        return self.encoder.encode_pixels(np.concatenate(list(pixels)))

    def classify(
        self, images: Sequence[Image.Image], labels: list[str], threshold: float | None = None
    ) -> list[Classification]:
        class_embeddings = self.text_cache.texts(labels)
        probs = probabilities(self.embed(images), class_embeddings, self.encoder.logit_scale)
        return [classify_row(labels, row, threshold) for row in probs]

    def moderate(self, images: Sequence[Image.Image], policy: Policy) -> list[Decision]:
        return self.judge_embeddings(self.embed(images), policy)

    def judge_embeddings(self, embeddings: np.ndarray, policy: Policy) -> list[Decision]:
        probs = self.heads.probabilities(embeddings, policy, self.text_cache, self.encoder.logit_scale)
        head_scores = self.heads.scores(embeddings, policy)
        return [judge(policy, row, extra) for row, extra in zip(probs, head_scores, strict=True)]

    def score_embeddings(self, embeddings: np.ndarray, policy: Policy) -> list[dict[str, float]]:
        """The policy's score heads only (e.g. aesthetics), from the same embeddings."""
        return self.heads.scores(embeddings, policy)

    def health_check(self) -> None:
        """One real forward pass through the image tower; raises if the model cannot answer."""
        blank = Image.new("RGB", (self.encoder.preprocess.crop_width, self.encoder.preprocess.crop_height))
        decisions = self.moderate([blank], self.policies.default)
        if not decisions or not np.isfinite(list(decisions[0].scores.values())).all():
            raise RuntimeError("the model returned no finite scores")


def build_moderator(settings: Settings) -> Moderator:
    policies = PolicySet.from_paths(settings.moderation_policy)  # bad policy -> fail before the model load
    return Moderator(load_encoder(settings), policies, settings)


@lru_cache
def get_moderator() -> Moderator:
    """The process-wide moderator, loaded on first use (at start-up for the app and the Lambda)."""
    return build_moderator(get_settings())
