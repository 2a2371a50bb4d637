"""The Lambda entry point (`handler.main.handler`, the container's CMD): route each event by its shape.

HTTP events (API Gateway REST v1, HTTP API v2, Function URL) go to the FastAPI app through Mangum with
lifespan off (Mangum would run start-up on every invocation); the model loads here, once per container,
at init. S3 notifications, SQS(S3), EventBridge and S3 Batch Operations go to the S3 moderation flow.
"""

from __future__ import annotations

import logging
from typing import Any

from mangum import Mangum

from handler.app import app
from handler.core.moderator import get_moderator
from handler.s3.entry import handle_s3_event
from handler.s3.events import EventKind, event_kind
from handler.settings import get_settings

logger = logging.getLogger(__name__)

# The Lambda runtime installs the root handler; our loggers only need their level (INFO by default).
logging.getLogger("handler").setLevel(get_settings().log_level.upper())
get_moderator()  # load the model at init, outside the handler: every invocation reuses it
_http = Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every event the deployment sends; an unknown shape is a logged `UnsupportedEvent` (a ValueError)."""
    try:
        kind = event_kind(event)
        if kind is EventKind.http:
            response: dict[str, Any] = _http(event, context)
            return response
        return handle_s3_event(event, kind)
    except Exception:
        logger.exception("invocation failed")
        raise
