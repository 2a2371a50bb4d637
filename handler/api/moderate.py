"""POST /v1/moderate: judge one image by a policy. Multipart (file or URL) or JSON (url, base64, s3)."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from handler.api.deps import moderator
from handler.api.schemas import ModerateJSONRequest, ModerateResponse
from handler.api.sources import RequestSource
from handler.api.video_schemas import VideoJSONRequest
from handler.core.moderator import Moderator
from handler.core.scoring import Decision
from handler.exceptions import InputError
from handler.logs import log_decision
from handler.observability import metrics
from handler.settings import get_settings

M = TypeVar("M", bound=BaseModel)
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


def openapi_body(multipart: dict[str, Any], json_model: str) -> dict[str, Any]:
    """An OpenAPI request body offering multipart and JSON (the JSON schema is added in app.py)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": {"$ref": f"#/components/schemas/{json_model}"}},
            },
        }
    }


def content_type_of(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/json", "multipart/form-data")):
        return content_type.split(";")[0]
    raise InputError(
        f"unsupported content type {content_type or '(none)'!r}; "
        "send multipart/form-data or application/json",
        status_code=415,
    )


async def parse_json(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"invalid JSON body: {problems}", status_code=422) from exc


def form_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


async def parse_one_source(
    request: Request,
    json_model: type[ModerateJSONRequest | VideoJSONRequest] = ModerateJSONRequest,
    file_field: str = "image",
) -> tuple[RequestSource, str | None]:
    """One medium and an optional policy name: JSON (`url`, `<file_field>_base64` or `s3`) or multipart
    (a `<file_field>` file or a `location` URL)."""
    if content_type_of(request) == "application/json":
        body: ModerateJSONRequest | VideoJSONRequest = await parse_json(request, json_model)
        source = RequestSource.from_fields(body.url, getattr(body, f"{file_field}_base64"), body.s3)
        return source, body.policy
    form = await request.form(max_files=1, max_fields=8)
    upload, location, policy = form.get(file_field), form.get("location"), form.get("policy")
    if isinstance(upload, UploadFile) and not location:
        return RequestSource.upload(upload.file, upload.filename), form_text(policy)
    if upload is None and isinstance(location, str) and location:
        return RequestSource.url(location), form_text(policy)
    article = "an" if file_field[0] in "aeiou" else "a"
    raise InputError(f"send exactly one of: {article} `{file_field}` file, or a `location` URL")


@router.post(
    "/v1/moderate",
    response_model=ModerateResponse,
    summary="Judge one image by a moderation policy",
    openapi_extra=openapi_body(_MULTIPART_SCHEMA, "ModerateJSONRequest"),
)
async def moderate(request: Request, mod: Annotated[Moderator, Depends(moderator)]) -> ModerateResponse:
    source, policy_name = await parse_one_source(request)
    return await run_in_threadpool(_judge, mod, source, policy_name)


def _judge(mod: Moderator, source: RequestSource, policy_name: str | None) -> ModerateResponse:
    started = time.perf_counter()
    policy = mod.policy(policy_name)
    decision = mod.moderate([mod.decode(source.read_image(mod.settings))], policy)[0]
    elapsed_ms = (time.perf_counter() - started) * 1000
    log_verdict(source.label, decision, elapsed_ms)
    return ModerateResponse.from_decision(decision, mod.model_id, elapsed_ms)


def log_verdict(source: str, decision: Decision, ms: float) -> None:
    """The one JSON log line (and metrics) per judged image."""
    verdict = decision.verdict.value
    metrics.object_judged(get_settings(), source="api", verdict=verdict, flagged=decision.flagged, ms=ms)
    log_decision(
        logger,
        event="moderate",
        source=source,
        verdict=decision.verdict.value,
        top=decision.top,
        score=decision.top_score,
        flagged=decision.flagged,
        policy=decision.policy.policy_id,
        ms=ms,
    )
