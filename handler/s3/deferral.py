"""Videos deferred for lack of invocation time go back on the queue as a new message, and the old one is
acknowledged, so a burst of videos never spends SQS receives (and never reaches the DLQ unjudged).

The new message names only the deferred objects and counts its deferrals; past MAX_VIDEO_DEFERRALS the
message is reported failed instead (SQS retries, then the DLQ), so nothing circulates for ever.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from handler.s3.events import DEFERRED, ObjectRef, SqsMessage

DELAY_S = 5  # a new invocation picks it up; the first video of every invocation always starts


@lru_cache
def get_sqs_client() -> Any:
    import boto3

    return boto3.client("sqs")


def queue_url(sqs: Any, source_arn: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> -> the queue's URL."""
    parts = source_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {source_arn!r}")
    return str(sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"])


def requeue(message: SqsMessage, refs: Sequence[ObjectRef], sqs: Any = None) -> None:
    """Send `refs` back to the message's queue as a new message (raises if SQS does not take it)."""
    client = sqs if sqs is not None else get_sqs_client()
    body = {
        DEFERRED: {
            "objects": [{"bucket": r.bucket, "key": r.key, "versionId": r.version_id} for r in refs],
            "deferrals": message.deferrals + 1,
        }
    }
    client.send_message(
        QueueUrl=queue_url(client, message.source_arn), MessageBody=json.dumps(body), DelaySeconds=DELAY_S
    )
