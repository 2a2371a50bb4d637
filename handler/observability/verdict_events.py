"""One EventBridge event per `review` or `quarantine` verdict, so apps and reviewers react without polling.

Sent before the decision record is marked done: a fault here fails the object, and the retry (which
resumes the recorded verdict, never re-judges) sends it again. Delivery is at least once; `id` (bucket,
key, version, judged-by) lets a consumer drop duplicates.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from handler.decisions.record import DecisionRecord

SOURCE = "clip-moderation"
DETAIL_TYPE = "Moderation Verdict"
NOTIFIED = frozenset({"review", "quarantine"})


class EventNotSent(RuntimeError):
    """EventBridge refused the entry; retryable (the object's retry sends it again)."""

    transient = True


@lru_cache
def get_events_client() -> Any:
    import boto3

    return boto3.client("events")


def detail(record: DecisionRecord) -> dict[str, Any]:
    where = record.quarantine
    return {
        "id": f"{record.bucket}/{record.key}#{record.sk}",
        "bucket": record.bucket,
        "key": record.key,
        "version": record.version_id,
        "verdict": record.verdict,
        "category": record.top,
        "score": record.score,
        "flagged": list(record.flagged),
        "policy": record.policy,
        "judged_by": record.judged_by,
        "quarantine": {"bucket": where.bucket, "key": where.key, "version": where.version_id}
        if where
        else None,
        "judged_at": record.judged_at,
    }


def publish(record: DecisionRecord, bus: str | None, client: Any = None) -> bool:
    """Send the event if the verdict calls for one and a bus is configured; True when sent."""
    if bus is None or record.verdict not in NOTIFIED:
        return False
    events = client if client is not None else get_events_client()
    entry = {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail(record)),
        "EventBusName": bus,
    }
    response = events.put_events(Entries=[entry])
    if response.get("FailedEntryCount"):
        failed = response["Entries"][0]
        raise EventNotSent(
            f"EventBridge refused the verdict event: {failed.get('ErrorCode')} {failed.get('ErrorMessage')}"
        )
    return True
