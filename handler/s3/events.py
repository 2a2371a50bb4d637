"""Read-only views over the events the Lambda receives: which kind it is, and which S3 objects it names.

Keys in S3 notifications, EventBridge events and Batch Operations schema 1.0 are URL-encoded (`+` is a
space) and are decoded here, once; schema 2.0 sends them as they are.
Hand-written rather than Powertools' data classes: one small module reads all five shapes (SNS-wrapped
SQS bodies and our own re-queued messages included) into one `ObjectRef`, without a runtime dependency.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

S3_TEST_EVENT = "s3:TestEvent"
DEFERRED = "moderationDeferred"  # the body of a message this function re-queued (`handler.s3.deferral`)


@dataclass(frozen=True)
class ObjectRef:
    """One S3 object version named by an event (key already decoded)."""

    bucket: str
    key: str
    version_id: str | None = None
    size: int | None = None
    sequencer: str | None = None

    @property
    def identity(self) -> tuple[str, str, str | None]:
        return (self.bucket, self.key, self.version_id)

    def pinned(self, version_id: str | None) -> ObjectRef:
        """The same object, pinned to `version_id` when the event named none."""
        return self if self.version_id or not version_id else replace(self, version_id=version_id)

    def __str__(self) -> str:
        suffix = f"?versionId={self.version_id}" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{suffix}"


@dataclass(frozen=True)
class SqsMessage:
    """One SQS message: the objects it names, or why it could not be read."""

    message_id: str
    refs: tuple[ObjectRef, ...] = ()
    problem: str | None = None
    source_arn: str = ""  # the queue's ARN
    deferrals: int = 0  # times this function already re-queued these objects


@dataclass(frozen=True)
class BatchTask:
    task_id: str
    ref: ObjectRef


@dataclass(frozen=True)
class BatchJob:
    schema_version: str
    invocation_id: str
    job_id: str
    user_arguments: Mapping[str, str]
    tasks: tuple[BatchTask, ...]


def s3_notification_refs(event: Mapping[str, Any]) -> list[ObjectRef]:
    """The created objects of an S3 notification; other event names (removals, restores) are skipped."""
    refs = []
    for record in event.get("Records", []):
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith(
            "ObjectCreated:"
        ):
            continue
        s3 = record["s3"]
        obj = s3["object"]
        refs.append(
            ObjectRef(
                bucket=s3["bucket"]["name"],
                key=unquote_plus(obj["key"]),
                version_id=obj.get("versionId") or None,
                size=obj.get("size"),
                sequencer=obj.get("sequencer"),
            )
        )
    return refs


def eventbridge_refs(event: Mapping[str, Any]) -> list[ObjectRef]:
    """The object of an EventBridge "Object Created" event; other aws.s3 detail types name none."""
    if event.get("detail-type") != "Object Created":
        return []
    detail = event["detail"]
    obj = detail["object"]
    return [
        ObjectRef(
            bucket=detail["bucket"]["name"],
            key=unquote_plus(obj["key"]),
            version_id=obj.get("version-id") or None,
            size=obj.get("size"),
            sequencer=obj.get("sequencer"),
        )
    ]


def sqs_messages(event: Mapping[str, Any]) -> list[SqsMessage]:
    """Each message with the objects its body names (an S3 notification, possibly inside SNS)."""
    messages = []
    for record in event.get("Records", []):
        message_id = str(record.get("messageId", ""))
        source_arn = str(record.get("eventSourceARN", ""))
        try:
            body = json.loads(record.get("body") or "null")
            if isinstance(body, dict) and DEFERRED in body:
                deferred = body[DEFERRED]
                refs = [ObjectRef(o["bucket"], o["key"], o.get("versionId")) for o in deferred["objects"]]
                deferrals = int(deferred["deferrals"])
            else:
                refs, deferrals = _body_refs(body), 0
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            messages.append(SqsMessage(message_id, problem=f"unreadable message body: {exc!r}"))
            continue
        messages.append(SqsMessage(message_id, tuple(refs), source_arn=source_arn, deferrals=deferrals))
    return messages


def _body_refs(body: Any) -> list[ObjectRef]:
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    if body.get("Type") == "Notification" and "Message" in body:  # S3 -> SNS -> SQS fan-out
        return _body_refs(json.loads(body["Message"]))
    if body.get("Event") == S3_TEST_EVENT:
        return []
    if body.get("source") == "aws.s3" and "detail-type" in body:
        return eventbridge_refs(body)
    if isinstance(body.get("Records"), list):
        return s3_notification_refs(body)
    raise ValueError(f"not an S3 notification; keys seen: {sorted(body)}")


def batch_job(event: Mapping[str, Any]) -> BatchJob:
    """An S3 Batch Operations invocation: 1.0 names buckets by ARN and URL-encodes keys; 2.0 does not."""
    version = str(event["invocationSchemaVersion"])
    job = event.get("job") or {}
    tasks = []
    for task in event["tasks"]:
        if version == "1.0":
            bucket = str(task["s3BucketArn"]).rsplit(":", 1)[-1]
            key = unquote_plus(task["s3Key"])
        else:
            bucket, key = task["s3Bucket"], task["s3Key"]
        ref = ObjectRef(bucket=bucket, key=key, version_id=task.get("s3VersionId") or None)
        tasks.append(BatchTask(task_id=str(task["taskId"]), ref=ref))
    return BatchJob(
        schema_version=version,
        invocation_id=str(event["invocationId"]),
        job_id=str(job.get("id", "")),
        user_arguments=dict(job.get("userArguments") or {}),
        tasks=tuple(tasks),
    )
