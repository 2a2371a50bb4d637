"""S3-side event sources -> the moderation flow -> each source's own answer (one handler per source).

- S3 notifications and EventBridge: any object that failed raises, so Lambda retries the event
  (objects already done are recorded no-ops on the retry).
- SQS: a partial-batch response naming only the messages whose own objects failed; deferred videos are
  re-queued as new messages (`handler.s3.deferral`) rather than retried.
- S3 Batch Operations: a result per task (Succeeded / TemporaryFailure / PermanentFailure).
Hand-written rather than Powertools' BatchProcessor: it processes records one by one, and one forward
pass per SQS batch needs every record's objects at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from handler.core.moderator import Moderator
from handler.decisions.table import DecisionTable
from handler.s3 import deferral
from handler.s3.events import (
    ObjectRef,
    batch_job,
    eventbridge_refs,
    s3_notification_refs,
    sqs_messages,
)
from handler.s3.faults import describe, is_transient
from handler.s3.moderation import ObjectResult, Outcome, moderate_objects

logger = logging.getLogger(__name__)


class S3ModerationFailed(RuntimeError):
    """Some objects of the event hit an infrastructure fault; raised so Lambda retries the event."""

    def __init__(self, failures: Sequence[ObjectResult]) -> None:
        lines = "; ".join(f"{r.ref}: {r.detail}" for r in failures)
        super().__init__(f"{len(failures)} object(s) failed: {lines}")
        self.failures = list(failures)


def acknowledge_test_event(event: dict[str, Any]) -> dict[str, Any]:
    logger.info("s3:TestEvent for bucket %s acknowledged and ignored", event.get("Bucket"))
    return {"objects": []}


def handle_notification(
    event: dict[str, Any],
    *,
    client: Any = None,
    moderator: Moderator | None = None,
    table: DecisionTable | None = None,
) -> dict[str, Any]:
    """An S3 notification (direct, asynchronous invoke)."""
    return _moderate_or_raise(s3_notification_refs(event), client, moderator, table)


def handle_eventbridge(
    event: dict[str, Any],
    *,
    client: Any = None,
    moderator: Moderator | None = None,
    table: DecisionTable | None = None,
) -> dict[str, Any]:
    refs = eventbridge_refs(event)
    if not refs:
        logger.info("EventBridge %r event ignored (only Object Created is moderated)", event["detail-type"])
    return _moderate_or_raise(refs, client, moderator, table)


def _moderate_or_raise(
    refs: list[ObjectRef], client: Any, moderator: Moderator | None, table: DecisionTable | None
) -> dict[str, Any]:
    results = moderate_objects(refs, client=client, moderator=moderator, table=table) if refs else []
    failures = [r for r in results if not r.ok]
    if failures:
        raise S3ModerationFailed(failures) from failures[0].error
    return {"objects": [_summary(r) for r in results]}


def handle_sqs(
    event: dict[str, Any],
    *,
    client: Any = None,
    moderator: Moderator | None = None,
    table: DecisionTable | None = None,
    sqs: Any = None,
) -> dict[str, Any]:
    """All messages' objects in one batch; `batchItemFailures` lists the messages to deliver again."""
    messages = sqs_messages(event)
    refs: list[ObjectRef] = [ref for message in messages for ref in message.refs]
    results = iter(moderate_objects(refs, client=client, moderator=moderator, table=table) if refs else [])
    failed: list[str] = []
    for message in messages:
        own = [next(results) for _ in message.refs]
        if message.problem is not None:
            logger.error("SQS message %s: %s", message.message_id, message.problem)
            failed.append(message.message_id)
            continue
        errors = [r for r in own if not r.ok and r.outcome is not Outcome.deferred]
        deferred = [r.ref for r in own if r.outcome is Outcome.deferred]
        for result in errors:
            logger.error("SQS message %s: %s failed: %s", message.message_id, result.ref, result.detail)
        if not errors and deferred and not _requeued(message, deferred, moderator, sqs):
            errors = [r for r in own if r.outcome is Outcome.deferred]
        if errors:
            failed.append(message.message_id)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _requeued(message: Any, refs: list[ObjectRef], moderator: Moderator | None, sqs: Any) -> bool:
    """True when the deferred objects went back on the queue as a new message (the old one is acked)."""
    from handler.core.moderator import get_moderator

    limit = (moderator or get_moderator()).settings.max_video_deferrals
    if message.deferrals >= limit:
        logger.error("SQS message %s: deferred %d times; left to SQS retries", message.message_id, limit)
        return False
    try:
        deferral.requeue(message, refs, sqs)
    except Exception:
        logger.exception("SQS message %s: could not re-queue its deferred videos", message.message_id)
        return False
    logger.info("SQS message %s: %d deferred object(s) re-queued", message.message_id, len(refs))
    return True


def handle_batch(
    event: dict[str, Any],
    *,
    client: Any = None,
    moderator: Moderator | None = None,
    table: DecisionTable | None = None,
) -> dict[str, Any]:
    """S3 Batch Operations: the documented response, one result per task."""
    job = batch_job(event)
    results = moderate_objects(
        [task.ref for task in job.tasks], client=client, moderator=moderator, table=table
    )
    task_results = []
    for task, result in zip(job.tasks, results, strict=True):
        if result.ok:
            code, text = "Succeeded", _result_text(result)
        else:
            assert result.error is not None
            code = "TemporaryFailure" if is_transient(result.error) else "PermanentFailure"
            text = describe(result.error)
            logger.error("Batch Operations task %s (%s): %s %s", task.task_id, task.ref, code, text)
        task_results.append({"taskId": task.task_id, "resultCode": code, "resultString": text})
    return {
        "invocationSchemaVersion": job.schema_version,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": job.invocation_id,
        "results": task_results,
    }


def _result_text(result: ObjectResult) -> str:
    parts = [result.outcome.value]
    if result.verdict:
        parts.append(f"verdict={result.verdict}")
    if result.detail:
        parts.append(result.detail)
    return "; ".join(parts)


def _summary(result: ObjectResult) -> dict[str, Any]:
    return {
        "bucket": result.ref.bucket,
        "key": result.ref.key,
        "version": result.ref.version_id,
        "outcome": result.outcome.value,
        "verdict": result.verdict,
    }
