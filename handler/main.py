"""The Lambda entry point (`handler.main.handler`, the container's CMD): route each event by its shape.

A small table of (matches, handle) pairs, as Mangum picks its handlers: HTTP events (API Gateway REST v1,
HTTP API v2, Function URL, ALB, Lambda@Edge) go to the FastAPI app through Mangum with lifespan off
(Mangum would run start-up on every invocation); the model loads here, once per container, at init.
S3 notifications, SQS(S3), EventBridge and S3 Batch Operations go to the S3 moderation flow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mangum import Mangum

from handler.app import app
from handler.core.moderator import get_moderator
from handler.observability import metrics
from handler.s3 import entry
from handler.s3.events import S3_TEST_EVENT
from handler.settings import get_settings
from handler.video.inputs import remove_stale_spools

logger = logging.getLogger(__name__)

Event = dict[str, Any]


class UnsupportedEvent(ValueError):
    """An event this function does not know how to handle."""


# The Lambda runtime installs the root handler; our loggers only need their level (INFO by default).
logging.getLogger("handler").setLevel(get_settings().log_level.upper())
remove_stale_spools()  # a timed-out invocation of this sandbox may have left a spooled video in /tmp
get_moderator()  # load the model at init, outside the handler: every invocation reuses it
_http = Mangum(app, lifespan="off")
metrics.cold_start(get_settings())


def _first_record(event: Event) -> dict[str, Any]:
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return records[0]
    return {}


def is_http(event: Event) -> bool:
    return "requestContext" in event or "cf" in _first_record(event)


def is_batch_job(event: Event) -> bool:
    return "invocationSchemaVersion" in event and "tasks" in event


def is_s3_test(event: Event) -> bool:
    return event.get("Event") == S3_TEST_EVENT


def is_eventbridge(event: Event) -> bool:
    return event.get("source") == "aws.s3" and "detail-type" in event


def is_s3_notification(event: Event) -> bool:
    return _first_record(event).get("eventSource") == "aws:s3"


def is_sqs(event: Event) -> bool:
    return _first_record(event).get("eventSource") == "aws:sqs"


def _http_handler(event: Event, context: Any) -> dict[str, Any]:
    response: dict[str, Any] = _http(event, context)
    return response


ROUTES: tuple[tuple[str, Callable[[Event], bool], Callable[[Event, Any], dict[str, Any]]], ...] = (
    ("http", is_http, _http_handler),
    ("batch", is_batch_job, lambda event, _: entry.handle_batch(event)),
    ("s3_test", is_s3_test, lambda event, _: entry.acknowledge_test_event(event)),
    ("eventbridge", is_eventbridge, lambda event, _: entry.handle_eventbridge(event)),
    ("s3", is_s3_notification, lambda event, _: entry.handle_notification(event)),
    ("sqs", is_sqs, lambda event, _: entry.handle_sqs(event)),
)


def route_name(event: Any) -> str:
    """Which route takes `event`; raises `UnsupportedEvent` naming the keys seen."""
    if isinstance(event, dict):
        for name, matches, _ in ROUTES:
            if matches(event):
                return name
        record = _first_record(event)
        raise UnsupportedEvent(
            "unsupported event: expected an API Gateway/HTTP API/Function URL request, an S3 notification, "
            "SQS messages, an EventBridge aws.s3 event or an S3 Batch Operations job; keys seen: "
            f"{sorted(event)}" + (f"; Records[0] keys: {sorted(record)}" if record else "")
        )
    raise UnsupportedEvent(f"expected a JSON object event, got {type(event).__name__}")


def handler(event: Event, context: Any) -> dict[str, Any]:
    """Every event the deployment sends; an unknown shape is a logged `UnsupportedEvent` (a ValueError)."""
    try:
        name = route_name(event)
        handle = next(handle for route, _, handle in ROUTES if route == name)
        return handle(event, context)
    except Exception:
        logger.exception("invocation failed")
        raise
