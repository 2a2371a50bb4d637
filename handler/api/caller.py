"""Who called: the API key id and source IP API Gateway vouches for, or the peer address when self-hosted.

Only what the platform asserts is kept (the request context Mangum passes in `scope["aws.event"]`);
headers a caller chooses (X-Forwarded-For, User-Agent) are never taken as identity.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request


def caller_of(request: Request) -> dict[str, str]:
    event: Any = request.scope.get("aws.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(context, dict):
        identity = context.get("identity") or {}  # REST API (v1)
        http = context.get("http") or {}  # HTTP API (v2), Function URL
        found = {
            "api_key_id": identity.get("apiKeyId"),
            "source_ip": identity.get("sourceIp") or http.get("sourceIp"),
            "user_arn": identity.get("userArn"),
            "request_id": context.get("requestId"),
        }
        return {k: str(v) for k, v in found.items() if v}
    client = request.client
    return {"source_ip": client.host} if client is not None else {}
