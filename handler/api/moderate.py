"""POST /v1/moderate: judge one image by a policy. Multipart (file or URL) or JSON (url, base64, s3)."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from handler.api.deps import moderator
from handler.api.schemas import ModerateJSONRequest, ModerateResponse
from handler.exceptions import InputError
from handler.image_sources import from_base64, from_s3, from_url, read_upload
from handler.logs import log_decision
from handler.moderator import Moderator

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
_OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            "application/json": {"schema": {"$ref": "#/components/schemas/ModerateJSONRequest"}},
        },
    }
}


class _Source:
    """One image source, read lazily inside the worker thread."""

    def __init__(self, kind: str, value: Any, label: str) -> None:
        self.kind, self.value, self.label = kind, value, label

    def read(self, mod: Moderator) -> bytes:
        settings = mod.settings
        if self.kind == "upload":
            return read_upload(self.value, settings)
        if self.kind == "url":
            return from_url(self.value, settings)
        if self.kind == "base64":
            return from_base64(self.value, settings)
        ref = self.value
        return from_s3(ref.bucket, ref.key, ref.version_id, settings)


async def _parse(request: Request) -> tuple[_Source, str | None]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = ModerateJSONRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise InputError(f"invalid JSON body: {problems}", status_code=422) from exc
        if body.url is not None:
            return _Source("url", body.url, body.url), body.policy
        if body.image_base64 is not None:
            return _Source("base64", body.image_base64, "base64"), body.policy
        assert body.s3 is not None
        return _Source("s3", body.s3, f"s3://{body.s3.bucket}/{body.s3.key}"), body.policy
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=8)
        image, location, policy = form.get("image"), form.get("location"), form.get("policy")
        if isinstance(image, UploadFile) and not location:
            return _Source("upload", image.file, image.filename or "upload"), _text(policy)
        if image is None and isinstance(location, str) and location:
            return _Source("url", location, location), _text(policy)
        raise InputError("send exactly one of: an `image` file, or a `location` URL")
    raise InputError(
        f"unsupported content type {content_type or '(none)'!r}; "
        "send multipart/form-data or application/json",
        status_code=415,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@router.post(
    "/v1/moderate",
    response_model=ModerateResponse,
    summary="Judge one image by a moderation policy",
    openapi_extra=_OPENAPI_BODY,
)
async def moderate(request: Request, mod: Annotated[Moderator, Depends(moderator)]) -> ModerateResponse:
    source, policy_name = await _parse(request)
    return await run_in_threadpool(_judge, mod, source, policy_name)


def _judge(mod: Moderator, source: _Source, policy_name: str | None) -> ModerateResponse:
    started = time.perf_counter()
    policy = mod.policy(policy_name)
    decision = mod.moderate([mod.decode(source.read(mod))], policy)[0]
    elapsed_ms = (time.perf_counter() - started) * 1000
    log_decision(
        logger,
        event="moderate",
        source=source.label,
        verdict=decision.verdict.value,
        top=decision.top,
        score=decision.top_score,
        flagged=decision.flagged,
        policy=policy.policy_id,
        ms=elapsed_ms,
    )
    return ModerateResponse.from_decision(decision, mod.model_id, elapsed_ms)
