"""Request parsing shared by the routes: content types, JSON bodies, form fields, the one-source parser,
and the OpenAPI body that documents both encodings."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from handler.api.schemas import ModerateJSONRequest
from handler.api.sources import Source, Upload, Url, from_fields
from handler.api.video_schemas import VideoJSONRequest
from handler.exceptions import InputError

M = TypeVar("M", bound=BaseModel)


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
) -> tuple[Source, str | None]:
    """One medium and an optional policy name: JSON (`url`, `<file_field>_base64` or `s3`) or multipart
    (a `<file_field>` file or a `location` URL)."""
    if content_type_of(request) == "application/json":
        body: ModerateJSONRequest | VideoJSONRequest = await parse_json(request, json_model)
        source = from_fields(body.url, getattr(body, f"{file_field}_base64"), body.s3)
        return source, body.policy
    form = await request.form(max_files=1, max_fields=8)
    upload, location, policy = form.get(file_field), form.get("location"), form.get("policy")
    if isinstance(upload, UploadFile) and not location:
        return Upload(upload.file, upload.filename), form_text(policy)
    if upload is None and isinstance(location, str) and location:
        return Url(location), form_text(policy)
    article = "an" if file_field[0] in "aeiou" else "a"
    raise InputError(f"send exactly one of: {article} `{file_field}` file, or a `location` URL")
