"""The service's metrics, kept to a few dimensions so a deployment creates a bounded number of them.

Namespace METRICS_NAMESPACE (default `ClipModeration`), dimension `Service` = the function name on every
metric, and:
- `Objects` (Count) by `Source` (api | s3 | video) x `Verdict` (allow | review | quarantine | error);
- `Flagged` (Count) by `Category` (one per policy category that can flag);
- `Errors` (Count) by `Reason` (not_an_image | too_large | undecodable | model | deferred | failed);
- `EndToEndMs`, `ModelMs` (Milliseconds) by `Source`; `FramesPerVideo` (Count); `ColdStart` (Count).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from handler.observability import emf
from handler.settings import Settings

SOURCES = ("api", "s3", "video")


def enabled(settings: Settings) -> bool:
    """METRICS=on/off; auto (the default) is on inside Lambda only, so local runs print no EMF."""
    if settings.metrics == "auto":
        return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    return settings.metrics == "on"


def _service() -> str:
    return os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")


def _emit(settings: Settings, dimensions: dict[str, str], metrics: dict[str, tuple[float, str]]) -> None:
    if enabled(settings):
        emf.write(emf.document(settings.metrics_namespace, {"Service": _service(), **dimensions}, metrics))


def object_judged(
    settings: Settings,
    *,
    source: str,
    verdict: str,
    flagged: Iterable[str] = (),
    ms: float | None = None,
    model_ms: float | None = None,
    reason: str | None = None,
) -> None:
    """One object's outcome: its verdict, its flagged categories, its latency, its error reason."""
    _emit(settings, {"Source": source, "Verdict": verdict}, {"Objects": (1, emf.COUNT)})
    for category in flagged:
        _emit(settings, {"Category": category}, {"Flagged": (1, emf.COUNT)})
    timings = {}
    if ms is not None:
        timings["EndToEndMs"] = (round(ms, 3), emf.MILLISECONDS)
    if model_ms is not None:
        timings["ModelMs"] = (round(model_ms, 3), emf.MILLISECONDS)
    if timings:
        _emit(settings, {"Source": source}, timings)
    if reason is not None:
        failure(settings, reason)


def error_reason(text: str) -> str:
    """The small, fixed set of `Reason` values an `error` verdict's free-text reason falls into."""
    lowered = text.lower()
    for needle, reason in (
        ("not an image", "not_an_image"),
        ("over the limit", "too_large"),
        ("too large", "too_large"),
        ("limit is", "too_large"),
        ("empty", "empty"),
        ("non-finite", "model"),
        ("video", "video"),
        ("undecodable", "undecodable"),
    ):
        if needle in lowered:
            return reason
    return "other"


def failure(settings: Settings, reason: str) -> None:
    _emit(settings, {"Reason": reason}, {"Errors": (1, emf.COUNT)})


def video_frames(settings: Settings, frames: int) -> None:
    _emit(settings, {}, {"FramesPerVideo": (frames, emf.COUNT)})


def cold_start(settings: Settings) -> None:
    _emit(settings, {}, {"ColdStart": (1, emf.COUNT)})
