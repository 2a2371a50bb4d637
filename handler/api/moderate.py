"""POST /v1/moderate: judge one image by a policy. Multipart (file or URL) or JSON (url, base64, s3)."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from handler.api.caller import caller_of
from handler.api.deps import media_limits, moderator
from handler.api.gateway import gateway_time_cap_s
from handler.api.parsing import openapi_body, parse_one_source
from handler.api.schemas import ModerateResponse
from handler.api.sources import S3Object, Source
from handler.core.moderator import Moderator
from handler.core.scoring import Decision
from handler.decisions.record import DONE, new_record
from handler.decisions.table import get_decision_table
from handler.logs import log_decision
from handler.media.judge import judge
from handler.media.values import image_media
from handler.observability import metrics
from handler.s3.events import ObjectRef
from handler.settings import get_settings

router = APIRouter(tags=["moderate"])
logger = logging.getLogger(__name__)

_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "The image file."},
        "location": {"type": "string", "description": "Public http(s) URL of the image, instead of a file."},
        "policy": {"type": "string", "description": "Policy name; the default policy if omitted."},
    },
}


@router.post(
    "/v1/moderate",
    response_model=ModerateResponse,
    summary="Judge one image by a moderation policy",
    openapi_extra=openapi_body(_MULTIPART_SCHEMA, "ModerateJSONRequest"),
)
async def moderate(request: Request, mod: Annotated[Moderator, Depends(moderator)]) -> ModerateResponse:
    started = time.monotonic()  # a multi-frame image's time limit counts from the request
    source, policy_name = await parse_one_source(request)
    cap = gateway_time_cap_s(request.scope.get("aws.event"))
    caller = caller_of(request)
    return await run_in_threadpool(_judge, mod, source, policy_name, started, cap, caller)


def _judge(
    mod: Moderator,
    source: Source,
    policy_name: str | None,
    started: float,
    cap_s: float | None,
    caller: dict[str, str],
) -> ModerateResponse:
    timer = time.perf_counter()
    policy = mod.policy(policy_name)
    limits = media_limits(mod)
    if isinstance(source, S3Object):
        data, version, etag = source.read_version(mod.settings)
    else:
        data, version, etag = source.read_image(mod.settings), None, None
    media = image_media(data, limits.image, limits.preprocess)
    verdict = judge(media, mod, policy, limits, started=started, time_cap_s=cap_s)
    elapsed_ms = (time.perf_counter() - timer) * 1000
    log_verdict(source.label, verdict.decision, elapsed_ms, frames=verdict.frames)
    if version is not None:
        _record(mod, version, etag, verdict.decision, caller)
    return ModerateResponse.from_decision(verdict.decision, mod.model_id, elapsed_ms, verdict.frames)


def _record(
    mod: Moderator, ref: ObjectRef, etag: str | None, decision: Decision, caller: dict[str, str]
) -> None:
    """A decision on a stored object goes into the decision table's history with who asked for it (an
    item of its own: it never stands in for the S3 flow's record of that version)."""
    table = get_decision_table(mod.settings)
    if table is None:
        return
    by = mod.judged_by(decision.policy)
    record = new_record(ref.bucket, ref.key, ref.version_id, etag, by, decision=decision, source="api")
    table.add(record.with_changes(caller=caller, state=DONE))


def log_verdict(source: str, decision: Decision, ms: float, frames: int = 1) -> None:
    """The one JSON log line (and metrics) per judged image."""
    verdict = decision.verdict.value
    metrics.object_judged(get_settings(), source="api", verdict=verdict, flagged=decision.flagged, ms=ms)
    log_decision(
        logger,
        event="moderate",
        frames=frames,
        source=source,
        verdict=decision.verdict.value,
        top=decision.top,
        score=decision.top_score,
        flagged=decision.flagged,
        policy=decision.policy.policy_id,
        ms=ms,
    )
