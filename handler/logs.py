"""Structured logging: one JSON object per decision, on module loggers (no basicConfig at import).

`log_decision` logs a dict. Under Lambda's JSON log format (the template's `LoggingConfig`) the runtime
puts it as an object in `message` beside the invocation's `requestId`, so Logs Insights can query every
field; processes we own (serve, CLI) print it as one JSON line.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

#: The id of the HTTP request being served (set by handler.observability.request_id), on every decision.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def log_decision(logger: logging.Logger, **fields: Any) -> None:
    """Emit one JSON object; floats rounded so lines stay short; None fields left out."""
    fields.setdefault("request_id", request_id.get())
    clean = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in fields.items() if v is not None}
    logger.info(json.loads(json.dumps(clean, default=str)))  # plain JSON types only, whatever came in


class JsonMessageFormatter(logging.Formatter):
    """A dict message as one compact JSON line; anything else as its text."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, dict) and not record.args:
            text = json.dumps(record.msg, ensure_ascii=False, separators=(",", ":"))
            return text if not record.exc_info else f"{text}\n{self.formatException(record.exc_info)}"
        return super().format(record)


def configure_cli_logging(level: str) -> None:
    """For processes we own (serve, CLI): message lines on stderr. Lambda keeps its own handler."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonMessageFormatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())
