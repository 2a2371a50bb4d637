"""The review routes: the queue of `review` verdicts, a reviewer's decision, one object's history.

They read and write the decision table (DECISION_TABLE); without one they answer 503 saying so.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from handler.api.caller import caller_of
from handler.api.deps import moderator
from handler.api.review_schemas import (
    DecisionRequest,
    DecisionResponse,
    HistoryResponse,
    QueueItem,
    QueueResponse,
    RecordView,
)
from handler.core.moderator import Moderator
from handler.decisions.record import DecisionRecord
from handler.decisions.table import DecisionTable, get_decision_table
from handler.logs import log_decision
from handler.review.cursor import decode_cursor, encode_cursor
from handler.review.decide import ReviewTarget, decide

router = APIRouter(tags=["review"])
logger = logging.getLogger(__name__)


def _table(mod: Moderator) -> DecisionTable:
    table = get_decision_table(mod.settings)
    if table is None:
        raise HTTPException(503, "the review queue needs the decision table: set DECISION_TABLE")
    return table


def _s3() -> Any:
    from handler.s3.client import get_s3_client

    return get_s3_client()


@router.get("/v1/review/queue", response_model=QueueResponse, summary="Objects awaiting a human decision")
def review_queue(
    mod: Annotated[Moderator, Depends(moderator)],
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the last page.")
    ] = None,
) -> QueueResponse:
    page = _table(mod).review_queue(limit=limit, cursor=decode_cursor(cursor))
    s3 = _s3()
    ttl = mod.settings.review_url_ttl_s
    items = [
        QueueItem(**RecordView.of(r).model_dump(), thumbnail_url=_presigned(s3, r, ttl)) for r in page.records
    ]
    return QueueResponse(items=items, next_cursor=encode_cursor(page.cursor))


def _presigned(s3: Any, record: DecisionRecord, ttl_s: int) -> str:
    params = {"Bucket": record.bucket, "Key": record.key, "ResponseCacheControl": "no-store"}
    if record.version_id:
        params["VersionId"] = record.version_id
    url: str = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s)
    return url


@router.get("/v1/review/history", response_model=HistoryResponse, summary="Every decision on one object")
def history(
    mod: Annotated[Moderator, Depends(moderator)],
    bucket: Annotated[str, Query(min_length=3, max_length=63)],
    key: Annotated[str, Query(min_length=1, max_length=1024)],
) -> HistoryResponse:
    records = _table(mod).history(bucket, key)
    return HistoryResponse(bucket=bucket, key=key, decisions=[RecordView.of(r) for r in records])


@router.post(
    "/v1/review/decision",
    response_model=DecisionResponse,
    summary="Allow or quarantine an object awaiting review (the first reviewer wins)",
    responses={404: {"description": "No such record"}, 409: {"description": "Already decided or changed"}},
)
async def review_decision(
    body: DecisionRequest, request: Request, mod: Annotated[Moderator, Depends(moderator)]
) -> DecisionResponse:
    # Who decided: the name they gave, beside what the platform vouches for (API key id, source address).
    reviewer = {**caller_of(request), **({"reviewer": body.reviewer} if body.reviewer else {})}
    return await run_in_threadpool(_decide, mod, body, reviewer)


def _decide(mod: Moderator, body: DecisionRequest, reviewer: dict[str, str]) -> DecisionResponse:
    target = ReviewTarget(body.bucket, body.key, body.version, body.judged_by)
    result = decide(
        _table(mod), _s3(), mod.settings, mod.policies, target, body.decision, reviewer, body.correct_label
    )
    log_decision(
        logger,
        event="review",
        source=f"s3://{body.bucket}/{body.key}",
        version=body.version,
        decision=body.decision,
        reviewer=reviewer,
        detail=result.detail,
    )
    view = RecordView.of(result.record)
    return DecisionResponse(
        decision=body.decision,
        detail=result.detail,
        quarantine=view.quarantine,
        feedback=result.feedback,
        record=view,
    )
