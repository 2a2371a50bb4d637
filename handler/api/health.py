"""GET /health: 200 only when the model is loaded and a forward pass answers."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from handler.api.deps import moderator
from handler.api.schemas import HealthResponse
from handler.core.moderator import Moderator

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/health", response_model=HealthResponse, responses={503: {"description": "Model not answering"}})
def health(mod: Annotated[Moderator, Depends(moderator)]) -> HealthResponse | JSONResponse:
    try:
        mod.health_check()
    except Exception as exc:  # the probe's whole job is to turn any failure into a 503
        logger.exception("health check failed")
        return JSONResponse(status_code=503, content={"detail": f"model not answering: {exc}"})
    return HealthResponse(status="ok", model=mod.model_id, policies=mod.policies.names)
