"""What judged a verdict: the judged-by id covers everything that can change one, so a change re-judges.

Policy content (categories, prompts, thresholds, actions), the contents of its head files, the model
(id, image-tower weights fingerprint, and the policy's text embeddings, which cover the text tower),
and the runtime + precision the image tower runs at.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handler.core.policy import Policy
from handler.core.policy_heads import head_paths


@dataclass(frozen=True)
class JudgedBy:
    id: str  # "<policy name>@<16 hex>": the idempotency key part of every decision record
    policy: str  # the policy's own id (name@content fingerprint), tagged on objects
    model_id: str
    model_fingerprint: str
    precision: str
    head_fingerprints: Mapping[str, str] = field(default_factory=dict)


def file_fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def judged_by(
    policy: Policy,
    *,
    model_id: str,
    model_fingerprint: str,
    precision: str,
    text_embeddings: Callable[[Policy], Any],
) -> JudgedBy:
    heads = {path: file_fingerprint(Path(path)) for path in head_paths(policy)}
    text = np.ascontiguousarray(np.asarray(text_embeddings(policy), dtype=np.float32))
    canonical = json.dumps(
        {
            "policy": policy.fingerprint,
            "heads": heads,
            "model": [model_id, model_fingerprint],
            "precision": precision,
            "text": hashlib.sha256(text.tobytes()).hexdigest(),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return JudgedBy(
        id=f"{policy.name}@{digest}",
        policy=policy.policy_id,
        model_id=model_id,
        model_fingerprint=model_fingerprint,
        precision=precision,
        head_fingerprints=heads,
    )
