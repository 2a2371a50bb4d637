"""X-Request-Id on every response: API Gateway's request id (what its access logs and the caller's
support request name), or a new one when self-hosted. Every decision logged while the request is served
carries it as `request_id`."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handler import logs

HEADER = "x-request-id"


def request_id_of(scope: Scope) -> str:
    event: Any = scope.get("aws.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(context, dict) and context.get("requestId"):
        return str(context["requestId"])
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): streaming and exceptions pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = logs.request_id.set(request_id)  # worker threads (run_in_threadpool) copy the context

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER.encode()]
                message = {**message, "headers": [*headers, (HEADER.encode(), request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)
