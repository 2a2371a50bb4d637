"""POST /v1/feedback: record a correction of a verdict (to S3 when FEEDBACK_BUCKET is set, else locally).

The image is named by reference (S3 object or URL) and/or content hash. Sent as base64, only its sha256
is kept: feedback never stores image bytes.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from handler.api.caller import caller_of
from handler.api.deps import moderator
from handler.api.schemas import S3Reference
from handler.core.moderator import Moderator
from handler.exceptions import InputError
from handler.feedback import FeedbackImage, FeedbackS3Object, feedback_store, new_record
from handler.inputs.sources import from_base64
from handler.logs import log_decision
from handler.s3.api_access import denied
from handler.s3.events import ObjectRef

router = APIRouter(tags=["feedback"])
logger = logging.getLogger(__name__)


class FeedbackRequest(BaseModel):
    """A correction: which image, what the service said, and what is right."""

    model_config = ConfigDict(extra="forbid")

    s3: S3Reference | None = Field(default=None, description="The S3 object that was judged.")
    url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://", description="The http(s) URL that was judged."
    )
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 of the image bytes."
    )
    image_base64: str | None = Field(
        default=None, description="The image itself; only its sha256 is recorded, never the bytes."
    )
    correct_label: str = Field(min_length=1, max_length=200, description="The right category or label.")
    verdict: str | None = Field(default=None, max_length=64, description="The verdict or prediction given.")
    policy: str | None = Field(default=None, max_length=64, description="The policy that judged it.")
    note: str | None = Field(default=None, max_length=2000, description="Free text for the reviewer.")

    @field_validator("correct_label")
    @classmethod
    def _label_not_blank(cls, label: str) -> str:
        if not label.strip():
            raise ValueError("correct_label must not be blank")
        return label.strip()

    @model_validator(mode="after")
    def _names_an_image(self) -> FeedbackRequest:
        if not any((self.s3, self.url, self.sha256, self.image_base64)):
            raise ValueError("name the image: s3, url, sha256 or image_base64")
        return self


class FeedbackResponse(BaseModel):
    id: str = Field(description="The record's id.")
    stored: str = Field(description="Where the record went: s3://bucket/key or a local file.")
    sha256: str | None = Field(description="The image's sha256 when known.")


@router.post("/v1/feedback", status_code=201, response_model=FeedbackResponse, summary="Record a correction")
async def feedback(
    body: FeedbackRequest, request: Request, mod: Annotated[Moderator, Depends(moderator)]
) -> FeedbackResponse:
    return await run_in_threadpool(_record, mod, body, caller_of(request))


def _record(mod: Moderator, body: FeedbackRequest, caller: dict[str, str]) -> FeedbackResponse:
    sha256 = body.sha256
    if body.image_base64 is not None:
        digest = hashlib.sha256(from_base64(body.image_base64, mod.settings)).hexdigest()
        if sha256 is not None and sha256 != digest:
            raise InputError("sha256 does not match the image sent in image_base64")
        sha256 = digest
    if body.s3 is not None and body.s3.bucket not in mod.settings.api_s3_buckets:
        raise denied(ObjectRef(body.s3.bucket, body.s3.key))  # the same answer as the other routes
    s3 = FeedbackS3Object(**body.s3.model_dump()) if body.s3 is not None else None
    record = new_record(
        FeedbackImage(sha256=sha256, s3=s3, url=body.url),
        body.correct_label,
        verdict=body.verdict,
        policy=body.policy,
        model=mod.model_id,
        note=body.note,
        caller=caller,
    )
    try:
        stored = feedback_store(mod.settings).put(record)
    except Exception as exc:  # storage (S3 or disk) is unavailable: the caller may retry
        logger.exception("feedback could not be stored")
        raise HTTPException(
            503, f"feedback could not be stored ({type(exc).__name__}); try again later"
        ) from exc
    log_decision(
        logger,
        event="feedback",
        id=record.id,
        label=record.correct_label,
        verdict=body.verdict,
        caller=caller,
    )
    return FeedbackResponse(id=record.id, stored=stored, sha256=sha256)
