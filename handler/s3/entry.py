"""S3-side event sources -> the moderation flow -> each source's own answer.

- S3 notifications and EventBridge: any object that failed raises, so Lambda retries the event
  (objects already done are idempotent no-ops on the retry).
- SQS: a partial-batch response naming only the messages whose objects failed.
- S3 Batch Operations: a result per task (Succeeded / TemporaryFailure / PermanentFailure).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from handler.core.moderator import Moderator
from handler.s3.events import (
    EventKind,
    ObjectRef,
    batch_job,
    eventbridge_refs,
    s3_notification_refs,
    sqs_messages,
)
from handler.s3.faults import describe, is_transient
from handler.s3.moderation import ObjectResult, moderate_objects

logger = logging.getLogger(__name__)


class S3ModerationFailed(RuntimeError):
    """Some objects of the event hit an infrastructure fault; raised so Lambda retries the event."""

    def __init__(self, failures: Sequence[ObjectResult]) -> None:
        lines = "; ".join(f"{r.ref}: {r.detail}" for r in failures)
        super().__init__(f"{len(failures)} object(s) failed: {lines}")
        self.failures = list(failures)


def handle_s3_event(
    event: dict[str, Any], kind: EventKind, *, client: Any = None, moderator: Moderator | None = None
) -> dict[str, Any]:
    """Route an S3-side event to the flow; returns what that event source expects back."""
    if kind is EventKind.s3_test:
        logger.info("s3:TestEvent for bucket %s acknowledged and ignored", event.get("Bucket"))
        return {"objects": []}
    if kind is EventKind.sqs:
        return handle_sqs(event, client=client, moderator=moderator)
    if kind is EventKind.batch:
        return handle_batch(event, client=client, moderator=moderator)
    if kind is EventKind.s3:
        refs = s3_notification_refs(event)
    elif kind is EventKind.eventbridge:
        refs = eventbridge_refs(event)
        if not refs:
            logger.info(
                "EventBridge %r event ignored (only Object Created is moderated)", event["detail-type"]
            )
    else:
        raise ValueError(f"{kind} events are not S3 events")
    results = moderate_objects(refs, client=client, moderator=moderator)
    failures = [r for r in results if not r.ok]
    if failures:
        raise S3ModerationFailed(failures) from failures[0].error
    return {"objects": [_summary(r) for r in results]}


def handle_sqs(
    event: dict[str, Any], *, client: Any = None, moderator: Moderator | None = None
) -> dict[str, Any]:
    """All messages' objects in one batch; `batchItemFailures` lists the messages to deliver again."""
    messages = sqs_messages(event)
    refs: list[ObjectRef] = [ref for message in messages for ref in message.refs]
    results = iter(moderate_objects(refs, client=client, moderator=moderator) if refs else [])
    failed: list[str] = []
    for message in messages:
        errors = [result for result in (next(results) for _ in message.refs) if not result.ok]
        if message.problem is not None:
            logger.error("SQS message %s: %s", message.message_id, message.problem)
        for result in errors:
            logger.error("SQS message %s: %s failed: %s", message.message_id, result.ref, result.detail)
        if errors or message.problem is not None:
            failed.append(message.message_id)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def handle_batch(
    event: dict[str, Any], *, client: Any = None, moderator: Moderator | None = None
) -> dict[str, Any]:
    """S3 Batch Operations: the documented response, one result per task."""
    job = batch_job(event)
    results = moderate_objects([task.ref for task in job.tasks], client=client, moderator=moderator)
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
