"""The class list of zero-shot classification, as callers give it (`/classify/`, the CLI, evaluate)."""

from __future__ import annotations

from handler.exceptions import InputError

__all__ = ["MAX_CLASSES", "MAX_CLASS_LENGTH", "parse_classes"]

MAX_CLASSES = 64
MAX_CLASS_LENGTH = 200


def parse_classes(raw: str) -> list[str]:
    """Comma-separated, trimmed, empty ones dropped, duplicates removed; at least two remain."""
    labels = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if len(labels) < 2:
        raise InputError(
            f"classes must name at least two distinct non-empty classes, comma-separated (got {raw!r})"
        )
    if len(labels) > MAX_CLASSES:
        raise InputError(f"at most {MAX_CLASSES} classes are accepted (got {len(labels)})")
    too_long = [label for label in labels if len(label) > MAX_CLASS_LENGTH]
    if too_long:
        raise InputError(f"each class must be at most {MAX_CLASS_LENGTH} characters")
    return labels
