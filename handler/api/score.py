"""POST /v1/score: the policy's score heads (e.g. aesthetics 0-10) for one image, without a verdict."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from handler.api.deps import moderator
from handler.api.moderate import content_type_of, form_text, openapi_body, parse_json
from handler.api.schemas import ModerateJSONRequest
from handler.api.sources import ImageSource
from handler.core.moderator import Moderator
from handler.exceptions import InputError
from handler.logs import log_decision

router = APIRouter(tags=["score"])
logger = logging.getLogger(__name__)

_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "The image file."},
        "location": {"type": "string", "description": "Public http(s) URL of the image, instead of a file."},
        "policy": {
            "type": "string",
            "description": "Policy whose `scores` to compute; the default if omitted.",
        },
    },
}


class ScoreResponse(BaseModel):
    scores: dict[str, float] = Field(description="Each score head of the policy, by name (e.g. aesthetics).")
    policy: str = Field(description="Name of the policy whose score heads ran.")
    model: str = Field(description="The CLIP checkpoint that embedded the image.")
    elapsed_ms: float = Field(description="Server-side time to decode, embed and score, in milliseconds.")


async def _parse(request: Request) -> tuple[ImageSource, str | None]:
    if content_type_of(request) == "application/json":
        body = await parse_json(request, ModerateJSONRequest)
        return ImageSource.from_json(body), body.policy
    form = await request.form(max_files=1, max_fields=8)
    image, location = form.get("image"), form.get("location")
    if isinstance(image, UploadFile) and not location:
        return ImageSource.upload(image.file, image.filename), form_text(form.get("policy"))
    if image is None and isinstance(location, str) and location:
        return ImageSource.url(location), form_text(form.get("policy"))
    raise InputError("send exactly one of: an `image` file, or a `location` URL")


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    summary="Score one image with the policy's score heads (no verdict)",
    openapi_extra=openapi_body(_MULTIPART_SCHEMA, "ModerateJSONRequest"),
)
async def score(request: Request, mod: Annotated[Moderator, Depends(moderator)]) -> ScoreResponse:
    source, policy_name = await _parse(request)
    return await run_in_threadpool(_score, mod, source, policy_name)


def _score(mod: Moderator, source: ImageSource, policy_name: str | None) -> ScoreResponse:
    started = time.perf_counter()
    policy = mod.policy(policy_name)
    if not policy.scores:
        raise InputError(
            f"policy {policy.name!r} has no score heads; list them under `scores:` in the policy"
        )
    embeddings = mod.embed([mod.decode(source.read(mod.settings))])
    scores = mod.score_embeddings(embeddings, policy)[0]
    elapsed_ms = (time.perf_counter() - started) * 1000
    log_decision(
        logger, event="score", source=source.label, scores=scores, policy=policy.policy_id, ms=elapsed_ms
    )
    return ScoreResponse(
        scores=scores, policy=policy.name, model=mod.model_id, elapsed_ms=round(elapsed_ms, 2)
    )
