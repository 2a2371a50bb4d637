"""Request bodies over the configured limits are refused with a 413 while they stream in, never read whole.

An ASGI middleware, so it holds under any server (uvicorn for `make serve` and self-hosting, Mangum on
Lambda, where API Gateway also caps bodies at 10 MB): a declared Content-Length over the limit is refused
before the body is read; a chunked or lying body is cut off at the first chunk that passes the limit.
The limit follows the route: a video's, a batch's, or one image's (base64 is 4/3 the bytes, plus room for
the multipart or JSON around it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from handler.exceptions import PayloadTooLarge
from handler.settings import Settings, get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Room for multipart headers, form fields or the JSON around base64 data.
BODY_OVERHEAD = 1024 * 1024


def body_limit(path: str, settings: Settings) -> int:
    """The most bytes a request body to `path` may have."""
    if path.startswith("/v1/moderate/video"):
        media = settings.max_video_bytes
    elif path.startswith("/v1/moderate/batch"):
        media = settings.max_batch_images * settings.max_image_bytes
    else:
        media = settings.max_image_bytes
    return media * 4 // 3 + BODY_OVERHEAD


class BodyTooLarge(PayloadTooLarge):
    """Raised from `receive` once the body passes its limit; the app's InputError handler answers 413."""


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Callable[[], Settings] = get_settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(str(scope.get("path", "")), self.settings())
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, _message(declared, limit))
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(_message(received, limit))
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _message(size: int, limit: int) -> str:
    return (
        f"the request body is {size} bytes or more; the limit for this route is {limit} bytes "
        "(from MAX_IMAGE_BYTES, MAX_VIDEO_BYTES or MAX_BATCH_IMAGES)"
    )


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]}
    )
    await send({"type": "http.response.body", "body": body})
