"""POST /v1/score: the policy's score heads (e.g. aesthetics 0-10) for one image, without a verdict."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from handler.api.deps import moderator
from handler.api.parsing import openapi_body, parse_one_source
from handler.api.sources import Source
from handler.core.moderator import Moderator
from handler.exceptions import InputError
from handler.inputs.images import ImageLimits, decode_still
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


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    summary="Score one image with the policy's score heads (no verdict)",
    openapi_extra=openapi_body(_MULTIPART_SCHEMA, "ModerateJSONRequest"),
)
async def score(request: Request, mod: Annotated[Moderator, Depends(moderator)]) -> ScoreResponse:
    source, policy_name = await parse_one_source(request)
    return await run_in_threadpool(_score, mod, source, policy_name)


def _score(mod: Moderator, source: Source, policy_name: str | None) -> ScoreResponse:
    started = time.perf_counter()
    policy = mod.policy(policy_name)
    if not policy.scores:
        raise InputError(
            f"policy {policy.name!r} has no score heads; list them under `scores:` in the policy"
        )
    limits = ImageLimits.from_settings(mod.settings)
    embeddings = mod.embed([decode_still(source.read_image(mod.settings), limits, mod.encoder.preprocess)])
    scores = mod.score_embeddings(embeddings, policy)[0]
    elapsed_ms = (time.perf_counter() - started) * 1000
    log_decision(
        logger, event="score", source=source.label, scores=scores, policy=policy.policy_id, ms=elapsed_ms
    )
    return ScoreResponse(
        scores=scores, policy=policy.name, model=mod.model_id, elapsed_ms=round(elapsed_ms, 2)
    )
