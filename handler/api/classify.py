"""POST /classify/: the thesis API, zero-shot over the classes the caller names."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from handler.api.deps import moderator
from handler.api.schemas import ClassifyResponse, ClassifyResult, OriginalPayload
from handler.core.labels import parse_classes
from handler.core.moderator import Moderator
from handler.exceptions import InputError
from handler.inputs.images import ImageLimits, decode_still
from handler.inputs.sources import from_url, read_upload
from handler.logs import log_decision

router = APIRouter(tags=["classify"])
logger = logging.getLogger(__name__)

CLASSIFIERS = ("clip",)


@router.post("/classify/", response_model=ClassifyResponse, summary="Zero-shot classify one image")
@router.post("/classify", response_model=ClassifyResponse, include_in_schema=False)
async def classify(
    mod: Annotated[Moderator, Depends(moderator)],
    image: Annotated[UploadFile | None, File(description="The image file (any format Pillow reads).")] = None,
    location: Annotated[
        str | None, Form(description="Public http(s) URL of the image, instead of a file.")
    ] = None,
    classes: Annotated[str, Form(description="Comma-separated class names; at least two.")] = "nsfw, sfw",
    classifier: Annotated[str, Form(description="The classifier; only `clip` exists.")] = "clip",
    threshold: Annotated[
        float | None,
        Form(
            ge=0.0, le=1.0, description="If the top probability is below this, the prediction is `unknown`."
        ),
    ] = None,
) -> ClassifyResponse:
    # One hop to a worker thread for all the blocking work (read, fetch, decode, model); the response is
    # validated back on the event loop (a sync route would pay a second hop for that).
    return await run_in_threadpool(_classify, mod, image, location, classes, classifier, threshold)


def _classify(
    mod: Moderator,
    image: UploadFile | None,
    location: str | None,
    classes: str,
    classifier: str,
    threshold: float | None,
) -> ClassifyResponse:
    started = time.perf_counter()
    if classifier not in CLASSIFIERS:
        raise InputError(f"unknown classifier {classifier!r}; available: {', '.join(CLASSIFIERS)}")
    labels = parse_classes(classes)
    if (image is None) == (not location):
        raise InputError("send exactly one of: an `image` file, or a `location` URL")
    if image is not None:
        data = read_upload(image.file, mod.settings)
    else:
        data = from_url(str(location), mod.settings)
    result = mod.classify(
        [decode_still(data, ImageLimits.from_settings(mod.settings), mod.encoder.preprocess)],
        labels,
        threshold,
    )[0]
    log_decision(
        logger,
        event="classify",
        source=location or (image.filename if image else None),
        prediction=result.prediction,
        top=max(result.probabilities.values()),
        ms=(time.perf_counter() - started) * 1000,
    )
    return ClassifyResponse(
        result=ClassifyResult(
            prediction=result.prediction,
            label_probabilities=result.probabilities,
            original_payload=OriginalPayload(location=location or None, classifier=classifier),
        )
    )
