"""POST /v1/moderate/video: judge a video (or an animated GIF/WebP) by a policy, frame samples over time.

Multipart (`video` file or `location` URL) or JSON (`url`, `video_base64`, `s3`). The bytes go to a
temporary file within MAX_VIDEO_BYTES, are sniffed, and judged by `handler.video.judge`.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from handler.api.deps import moderator
from handler.api.moderate import openapi_body, parse_one_source
from handler.api.sources import RequestSource
from handler.api.video_schemas import VideoJSONRequest, VideoModerateResponse
from handler.api.video_sources import video_chunks
from handler.core.moderator import Moderator
from handler.logs import log_decision
from handler.observability import metrics
from handler.video.inputs import head_of, spooled, too_large, video_kind
from handler.video.judge import moderate_video

router = APIRouter(tags=["moderate"])
logger = logging.getLogger(__name__)

_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "video": {"type": "string", "format": "binary", "description": "The video (or animated GIF/WebP)."},
        "location": {"type": "string", "description": "Public http(s) URL of the video, instead of a file."},
        "policy": {"type": "string", "description": "Policy name; the default policy if omitted."},
    },
}
_BODY_OVERHEAD = 1024 * 1024  # multipart headers and fields, or JSON around the base64


async def _parse(request: Request, limit: int) -> tuple[RequestSource, str | None]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit * 4 // 3 + _BODY_OVERHEAD:  # base64 is 4/3 the bytes
        raise too_large(int(declared), limit)
    return await parse_one_source(request, VideoJSONRequest, file_field="video")


@router.post(
    "/v1/moderate/video",
    response_model=VideoModerateResponse,
    summary="Judge a video (or animated GIF/WebP) by a moderation policy, frame samples over time",
    openapi_extra=openapi_body(_MULTIPART_SCHEMA, "VideoJSONRequest"),
)
async def moderate_video_route(
    request: Request, mod: Annotated[Moderator, Depends(moderator)]
) -> VideoModerateResponse:
    started = time.monotonic()  # the time limit counts from the request, upload included
    source, policy_name = await _parse(request, mod.settings.max_video_bytes)
    cap = gateway_time_cap_s(request.scope.get("aws.event"))
    return await run_in_threadpool(_judge, mod, source, policy_name, started, cap)


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


def _judge(
    mod: Moderator, source: RequestSource, policy_name: str | None, started: float, cap_s: float | None = None
) -> VideoModerateResponse:
    timer = time.perf_counter()
    policy = mod.policy(policy_name)
    settings = mod.settings
    with spooled(video_chunks(source, settings), settings.max_video_bytes) as path:
        kind = video_kind(head_of(path))
        verdict = moderate_video(
            path,
            kind,
            mod,
            policy,
            settings,
            mod.encoder.preprocess.shortest_edge,
            started=started,
            time_cap_s=cap_s,
        )
    elapsed_ms = (time.perf_counter() - timer) * 1000
    top, score = verdict.top
    flagged = sorted({s.category for s in verdict.segments if s.action.value != "allow"})
    metrics.object_judged(
        settings, source="video", verdict=verdict.verdict.value, flagged=flagged, ms=elapsed_ms
    )
    metrics.video_frames(settings, len(verdict.frames))
    log_decision(
        logger,
        event="moderate_video",
        source=source.label,
        format=kind,
        verdict=verdict.verdict.value,
        top=top,
        score=score,
        segments=len(verdict.segments),
        first_flagged_s=verdict.first_flagged_s,
        frames=len(verdict.frames),
        duration_s=verdict.duration_s,
        early_exit=verdict.early_exit,
        policy=policy.policy_id,
        ms=elapsed_ms,
    )
    return VideoModerateResponse.from_verdict(verdict, mod.model_id, elapsed_ms)
