"""POST /v1/moderate/batch: several images, one policy, one batched forward pass; errors per item."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from handler.api.deps import media_limits, moderator
from handler.api.gateway import gateway_time_cap_s
from handler.api.moderate import log_verdict
from handler.api.parsing import content_type_of, form_text, openapi_body, parse_json
from handler.api.schemas import (
    BatchItemError,
    BatchItemResult,
    BatchJSONRequest,
    BatchResponse,
    ModerateResponse,
)
from handler.api.sources import Source, Upload, Url, from_fields
from handler.core.moderator import Moderator
from handler.core.scoring import Decision
from handler.exceptions import InputError, PayloadTooLarge
from handler.inputs.gather import gather
from handler.media.judge import judge, judge_stills
from handler.media.values import MultiFrame, Still, image_media

router = APIRouter(tags=["moderate"])

_MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "images": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "Image files (repeat the field).",
        },
        "locations": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Public http(s) URLs of images (repeat the field).",
        },
        "policy": {"type": "string", "description": "Policy name; the default policy if omitted."},
    },
}


async def _parse(request: Request, limit: int) -> tuple[list[Source], str | None]:
    if content_type_of(request) == "application/json":
        body = await parse_json(request, BatchJSONRequest)
        sources, policy = (
            [from_fields(i.url, i.image_base64, i.s3) for i in body.items],
            body.policy,
        )
    else:
        form = await request.form(max_files=limit + 1, max_fields=limit + 8)
        sources = [Upload(f.file, f.filename) for f in form.getlist("images") if isinstance(f, UploadFile)]
        sources += [Url(u) for u in form.getlist("locations") if isinstance(u, str) and u]
        policy = form_text(form.get("policy"))
    if not sources:
        raise InputError("send at least one image: `images` files or `locations` URLs (JSON: `items`)")
    if len(sources) > limit:
        raise PayloadTooLarge(f"{len(sources)} images in one batch; the limit is {limit} (MAX_BATCH_IMAGES)")
    return sources, policy


@router.post(
    "/v1/moderate/batch",
    response_model=BatchResponse,
    summary="Judge several images by one policy (one batched forward pass)",
    openapi_extra=openapi_body(_MULTIPART_SCHEMA, "BatchJSONRequest"),
)
async def moderate_batch(request: Request, mod: Annotated[Moderator, Depends(moderator)]) -> BatchResponse:
    started = time.monotonic()  # the batch's time limit counts from the request
    sources, policy_name = await _parse(request, mod.settings.max_batch_images)
    cap = gateway_time_cap_s(request.scope.get("aws.event"))
    return await run_in_threadpool(_judge_all, mod, sources, policy_name, started, cap)


def _judge_all(
    mod: Moderator, sources: list[Source], policy_name: str | None, started: float, cap_s: float | None
) -> BatchResponse:
    """Items fetched and decoded concurrently within BATCH_TIME_LIMIT_S; stills then go through the model
    together, and each multi-frame item is judged frame by frame on its own."""
    timer = time.perf_counter()
    policy = mod.policy(policy_name)
    limits = media_limits(mod)
    settings = mod.settings
    budget = settings.batch_time_limit_s if cap_s is None else min(settings.batch_time_limit_s, cap_s)
    deadline = started + budget
    left = max(0.1, deadline - time.monotonic())
    fetching = settings.model_copy(
        update={"fetch_total_timeout_s": min(settings.fetch_total_timeout_s, left)}
    )

    def load(source: Source) -> Callable[[], Still | MultiFrame]:
        return lambda: image_media(source.read_image(fetching), limits.image, limits.preprocess)

    def late() -> InputError:
        return InputError(
            f"not fetched and decoded within the batch's {budget:g} s (BATCH_TIME_LIMIT_S); "
            "send fewer or smaller images, or this one on its own",
            status_code=408,
        )

    loaded = gather([load(s) for s in sources], deadline, settings.batch_fetch_concurrency, late)
    results = [BatchItemResult(index=i, source=s.label) for i, s in enumerate(sources)]
    stills: list[tuple[BatchItemResult, Image.Image]] = []
    judged: list[tuple[BatchItemResult, Decision, int]] = []
    for item, media in zip(results, loaded, strict=True):
        try:
            if isinstance(media, InputError):
                raise media
            if isinstance(media, Still):
                stills.append((item, media.image))
                continue
            cap = max(0.0, deadline - time.monotonic())
            verdict = judge(media, mod, policy, limits, time_cap_s=cap)
            judged.append((item, verdict.decision, verdict.frames))
        except InputError as exc:  # one bad item does not sink the batch
            item.error = BatchItemError(status=exc.status_code, detail=exc.detail)
    decisions = judge_stills([image for _, image in stills], mod, policy)
    judged += [(item, decision, 1) for (item, _), decision in zip(stills, decisions, strict=True)]
    elapsed_ms = (time.perf_counter() - timer) * 1000
    share = elapsed_ms / max(1, len(judged))
    for item, decision, frames in judged:
        item.result = ModerateResponse.from_decision(decision, mod.model_id, share, frames)
        log_verdict(item.source, decision, share, frames)
    return BatchResponse(
        policy=policy.name, model=mod.model_id, elapsed_ms=round(elapsed_ms, 2), results=results
    )
