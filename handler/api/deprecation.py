"""Answers on the deprecated API Gateway stage `v1` (the 0.1.0 URLs, `.../v1/v1/moderate`) say so.

`Deprecation` is RFC 9745's header: the date the old URLs were deprecated, as `@<epoch seconds>`. The
stage is read from the API Gateway event Mangum passes in the ASGI scope; `make serve` has none.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LEGACY_STAGE = "v1"
DEPRECATED_AT = "@1796169600"  # 2026-12-02T00:00:00Z, when the stage took the environment's name
NOTICE = b"this URL is deprecated: use the stage in the stack's ApiUrl output (same paths after it)"


def _stage(scope: Scope) -> Any:
    event = scope.get("aws.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    return context.get("stage") if isinstance(context, dict) else None


class DeprecatedStageMiddleware:
    """Pure ASGI: adds `Deprecation` and a short `X-Deprecation-Notice` on the legacy stage only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _stage(scope) != LEGACY_STAGE:
            await self.app(scope, receive, send)
            return

        async def send_deprecated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", [])]
                headers += [(b"deprecation", DEPRECATED_AT.encode()), (b"x-deprecation-notice", NOTICE)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_deprecated)
