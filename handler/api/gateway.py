"""How long a request may take when API Gateway waits for it (it gives up after 29-30 s)."""

from __future__ import annotations

#: API Gateway stops waiting after 29 s (REST) or 30 s (HTTP API) whatever the function's timeout; the
#: video must be judged, or refused with a clear error, before that. Function URLs wait the full timeout.
API_GATEWAY_BUDGET_S = 27.0


def gateway_time_cap_s(event: object) -> float | None:
    """The time a video may take when the request came through API Gateway (the Lambda event Mangum saw)."""
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext")
    if not isinstance(context, dict) or "apiId" not in context:
        return None
    domain = str(context.get("domainName", ""))
    return None if ".lambda-url." in domain else API_GATEWAY_BUDGET_S
