"""POST /v1/moderate/video: judge a video (or a multi-frame image) by a policy, frame samples over time.

Multipart (`video` file or `location` URL) or JSON (`url`, `video_base64`, `s3`). The bytes go to a
temporary file within MAX_VIDEO_BYTES, are sniffed, and judged by `handler.video.judge`.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from handler.api.deps import media_limits, moderator
from handler.api.gateway import gateway_time_cap_s
from handler.api.parsing import openapi_body, parse_one_source
from handler.api.sources import Source
from handler.api.video_schemas import VideoJSONRequest, VideoModerateResponse
from handler.core.moderator import Moderator
from handler.exceptions import InputError
from handler.logs import log_decision
from handler.media.judge import judge
from handler.media.values import Still, file_media
from handler.observability import metrics
from handler.video.inputs import head_of, spooled, too_large, video_kind

router = APIRouter(tags=["moderate"])
logger = logging.getLogger(__name__)

_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "video": {
            "type": "string",
            "format": "binary",
            "description": "The video (or multi-frame image (GIF, WebP, APNG, TIFF)).",
        },
        "location": {"type": "string", "description": "Public http(s) URL of the video, instead of a file."},
        "policy": {"type": "string", "description": "Policy name; the default policy if omitted."},
    },
}
_BODY_OVERHEAD = 1024 * 1024  # multipart headers and fields, or JSON around the base64


async def _parse(request: Request, limit: int) -> tuple[Source, str | None]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit * 4 // 3 + _BODY_OVERHEAD:  # base64 is 4/3 the bytes
        raise too_large(int(declared), limit)
    return await parse_one_source(request, VideoJSONRequest, file_field="video")


@router.post(
    "/v1/moderate/video",
    response_model=VideoModerateResponse,
    summary="Judge a video (or a multi-frame image) by a moderation policy, frame samples over time",
    openapi_extra=openapi_body(_MULTIPART_SCHEMA, "VideoJSONRequest"),
)
async def moderate_video_route(
    request: Request, mod: Annotated[Moderator, Depends(moderator)]
) -> VideoModerateResponse:
    started = time.monotonic()  # the time limit counts from the request, upload included
    source, policy_name = await _parse(request, mod.settings.max_video_bytes)
    cap = gateway_time_cap_s(request.scope.get("aws.event"))
    return await run_in_threadpool(_judge, mod, source, policy_name, started, cap)


def _judge(
    mod: Moderator, source: Source, policy_name: str | None, started: float, cap_s: float | None = None
) -> VideoModerateResponse:
    timer = time.perf_counter()
    policy = mod.policy(policy_name)
    settings = mod.settings
    limits = media_limits(mod)
    with spooled(source.video_chunks(settings), settings.max_video_bytes) as path:
        kind = video_kind(head_of(path))
        media = file_media(path, limits.image, limits.preprocess)
        if isinstance(media, Still):
            raise InputError(f"this is a still {kind} image, not a video: send it to POST /v1/moderate", 415)
        judged = judge(media, mod, policy, limits, started=started, time_cap_s=cap_s)
    assert judged.timeline is not None  # frames and videos have one
    verdict = judged.timeline
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
        format=judged.format,
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
