"""The decision table (DynamoDB): conditional writes per object version + judged-by id, history, review queue.

Item key: `pk` = "<bucket>/<key>", `sk` = "<version>#<judged-by>". The sparse global secondary index
`review-queue` (partition `queue`, sort `judged_at`) holds exactly the `review` verdicts awaiting a human.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from handler.decisions.record import DONE, REVIEW_QUEUE, DecisionRecord, Quarantined, now_iso, object_pk
from handler.s3.faults import error_code
from handler.settings import Settings, get_settings

logger = logging.getLogger(__name__)

REVIEW_INDEX = "review-queue"


class DecisionConflict(RuntimeError):
    """A conditional write lost: someone else decided first (the stored record is attached)."""

    def __init__(self, message: str, current: DecisionRecord | None) -> None:
        super().__init__(message)
        self.current = current


@dataclass(frozen=True)
class Page:
    records: list[DecisionRecord]
    cursor: dict[str, Any] | None  # pass back to get the next page; None on the last one


class DecisionTable:
    """Reads and conditional writes on one table through an injectable low-level DynamoDB client."""

    def __init__(self, name: str, client: Any) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.name = name
        self.client = client
        self._serialize = TypeSerializer().serialize
        self._deserialize = TypeDeserializer().deserialize

    def _to_wire(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._serialize(v) for k, v in item.items()}

    def _from_wire(self, item: dict[str, Any]) -> DecisionRecord:
        return DecisionRecord.from_item({k: self._deserialize(v) for k, v in item.items()})

    def get(self, bucket: str, key: str, version: str, judged_by: str) -> DecisionRecord | None:
        response = self.client.get_item(
            TableName=self.name,
            Key=self._to_wire({"pk": object_pk(bucket, key), "sk": f"{version}#{judged_by}"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return self._from_wire(item) if item else None

    def claim(self, record: DecisionRecord) -> DecisionRecord:
        """Store `record` unless this version + judged-by id already has one; returns the one that holds.

        The first writer's verdict is final: a concurrent or repeated judgement acts on it, so one object
        version is never acted on with two different outcomes.
        """
        from botocore.exceptions import ClientError

        try:
            self.client.put_item(
                TableName=self.name,
                Item=self._to_wire(record.to_item()),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            stored = self.get(record.bucket, record.key, record.version, record.judged_by)
            if stored is None:  # deleted in between: an operator's doing; try once more
                return self.claim(record)
            return stored
        return record

    def add(self, record: DecisionRecord) -> None:
        """A history-only item (an API caller's decision on an object): its key is unique to it."""
        self.client.put_item(
            TableName=self.name,
            Item=self._to_wire(record.to_item()),
            ConditionExpression="attribute_not_exists(sk)",
        )

    def complete(self, record: DecisionRecord, quarantine: Quarantined | None = None) -> DecisionRecord:
        """Mark the record's actions done (and where its quarantine copy went)."""
        done = record.with_changes(state=DONE, quarantine=quarantine or record.quarantine)
        self.client.put_item(TableName=self.name, Item=self._to_wire(done.to_item()))
        return done

    def history(self, bucket: str, key: str) -> list[DecisionRecord]:
        """Every decision on every version of one object, oldest first."""
        records: list[DecisionRecord] = []
        start: dict[str, Any] | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            response = self.client.query(
                TableName=self.name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=self._to_wire({":pk": object_pk(bucket, key)}),
                ConsistentRead=True,
                **extra,
            )
            records.extend(self._from_wire(item) for item in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return sorted(records, key=lambda r: r.judged_at)

    def review_queue(self, limit: int = 20, cursor: dict[str, Any] | None = None) -> Page:
        """`review` verdicts awaiting a human, newest first."""
        extra = {"ExclusiveStartKey": cursor} if cursor else {}
        response = self.client.query(
            TableName=self.name,
            IndexName=REVIEW_INDEX,
            KeyConditionExpression="#queue = :queue",
            ExpressionAttributeNames={"#queue": "queue"},
            ExpressionAttributeValues=self._to_wire({":queue": REVIEW_QUEUE}),
            ScanIndexForward=False,
            Limit=limit,
            **extra,
        )
        records = [self._from_wire(item) for item in response.get("Items", [])]
        return Page(records, response.get("LastEvaluatedKey"))

    def decide_review(
        self, record: DecisionRecord, decision: str, reviewer: dict[str, str], quarantine: Quarantined | None
    ) -> DecisionRecord:
        """Take `record` out of the review queue with a reviewer's decision; the first reviewer wins.

        DecisionConflict when it is no longer in the queue (another reviewer decided).
        """
        from botocore.exceptions import ClientError

        review = {"decision": decision, "at": now_iso(), **reviewer}
        decided = record.with_changes(review=review, quarantine=quarantine or record.quarantine)
        try:
            self.client.put_item(
                TableName=self.name,
                Item=self._to_wire(decided.to_item()),
                ConditionExpression="#queue = :queue",
                ExpressionAttributeNames={"#queue": "queue"},
                ExpressionAttributeValues=self._to_wire({":queue": REVIEW_QUEUE}),
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            current = self.get(record.bucket, record.key, record.version, record.judged_by)
            raise DecisionConflict(f"s3://{record.bucket}/{record.key} was already decided", current) from exc
        return decided


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments matching template.yaml's DecisionTable (tests and `make s3-local` use it)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "queue", "AttributeType": "S"},
            {"AttributeName": "judged_at", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": REVIEW_INDEX,
                "KeySchema": [
                    {"AttributeName": "queue", "KeyType": "HASH"},
                    {"AttributeName": "judged_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


@lru_cache
def _table(name: str, connections: int) -> DecisionTable:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=10,
        max_pool_connections=connections,  # one for each S3_IO_WORKERS thread (boto3's default is 10)
    )
    return DecisionTable(name, boto3.client("dynamodb", config=config))


def get_decision_table(settings: Settings | None = None) -> DecisionTable | None:
    """The configured table (DECISION_TABLE), or None: then nothing is recorded (`make serve`)."""
    settings = settings or get_settings()
    name = settings.decision_table
    return _table(name, max(10, settings.s3_io_workers)) if name else None


def clear_cached_tables() -> None:
    """Tests: forget clients made against an earlier endpoint."""
    _table.cache_clear()
