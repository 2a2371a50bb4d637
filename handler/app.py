"""The ASGI app (`handler.app:app`): routes, error mapping, and the model loaded at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from handler import __version__
from handler.api import classify, health, moderate, moderate_batch, moderate_video
from handler.api import feedback as feedback_routes
from handler.api import policies as policy_routes
from handler.api import review as review_routes
from handler.api import score as score_routes
from handler.api.deprecation import DeprecatedStageMiddleware
from handler.api.no_store import NoStoreMiddleware
from handler.api.schemas import BatchJSONRequest, ModerateJSONRequest
from handler.api.video_schemas import VideoJSONRequest
from handler.console import routes as console_routes
from handler.core.moderator import get_moderator
from handler.exceptions import InputError
from handler.observability.request_id import RequestIdMiddleware


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(get_moderator)  # load once, fail fast; the Lambda entry does this at init
    yield


async def _input_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})


def create_app() -> FastAPI:
    app = FastAPI(
        title="CLIP image moderation",
        version=__version__,
        description="Zero-shot image classification and policy-driven moderation on OpenAI's CLIP.",
        lifespan=lifespan,
    )
    app.add_exception_handler(InputError, _input_error)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(classify.router)
    app.include_router(moderate.router)
    app.include_router(moderate_batch.router)
    app.include_router(moderate_video.router)
    app.include_router(health.router)
    app.include_router(score_routes.router)
    app.include_router(feedback_routes.router)
    app.include_router(policy_routes.router)
    app.include_router(review_routes.router)
    app.include_router(console_routes.router)
    app.add_middleware(NoStoreMiddleware)
    app.add_middleware(DeprecatedStageMiddleware)
    _document_json_bodies(app)
    return app


def _document_json_bodies(app: FastAPI) -> None:
    """Routes that read the body themselves still get their JSON schema into /docs."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (ModerateJSONRequest, BatchJSONRequest, VideoJSONRequest):
                json_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(json_schema.pop("$defs", {}))
                components[model.__name__] = json_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


app = create_app()
