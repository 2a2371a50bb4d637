"""What one `python -m handler evaluate` run is asked to do (shared by evaluate and calibrate)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EvaluateOptions"]


@dataclass
class EvaluateOptions:
    dataset: Path | None
    out: Path
    classes: list[str] | None = None
    policy: str | None = None  # a policy file, or the name of a served policy
    head: Path | None = None
    threshold: float | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    positive: str | None = None
    target_recall: float | None = None
    target_fpr: float | None = None
    batch_size: int = 16
    cache_dir: Path | None = None
    feedback: list[str] = field(default_factory=list)
    feedback_images: list[Path] = field(default_factory=list)
    write_policy: Path | None = None
    progress: bool = True
