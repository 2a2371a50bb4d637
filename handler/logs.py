"""Structured logging: one JSON line per decision, on module loggers (no basicConfig at import)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


def log_decision(logger: logging.Logger, **fields: Any) -> None:
    """Emit one JSON object on one line; floats rounded so lines stay short."""
    clean = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in fields.items()}
    logger.info(json.dumps(clean, default=str, ensure_ascii=False, separators=(",", ":")))


def configure_cli_logging(level: str) -> None:
    """For processes we own (serve, CLI): plain message lines on stderr. Lambda keeps its own handler."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())
