"""What the decision table adds to the cost of one S3 object (DynamoDB on-demand), for `make bench`.

Per judged object: one strongly consistent GetItem (idempotency), and two PutItems (the conditional
claim, then the record marked done). A write costs one write request unit per started KB of the item,
a strongly consistent read one read request unit per started 4 KB.
"""

from __future__ import annotations

import json
import math

from handler.decisions.record import DecisionRecord

# DynamoDB on-demand, us-east-1, standard table class, prices of 2024-11-01 (unchanged through 2026-11).
PRICE_DATE = "2024-11-01"
PRICE_PER_MILLION_WRITE_UNITS = 0.625
PRICE_PER_MILLION_READ_UNITS = 0.125


def item_bytes(record: DecisionRecord) -> int:
    """An upper estimate of the item's stored size (attribute names and values as JSON text)."""
    return len(json.dumps(record.to_item(), default=str).encode())


def usd_per_million_objects(record: DecisionRecord) -> float:
    size = item_bytes(record)
    writes = 2 * math.ceil(size / 1024)
    reads = math.ceil(size / 4096)
    return writes * PRICE_PER_MILLION_WRITE_UNITS + reads * PRICE_PER_MILLION_READ_UNITS


def typical_record(categories: int = 5) -> DecisionRecord:
    """A quarantine decision of the default policy's size: what most items look like."""
    names = [f"category-{i}" for i in range(categories)]
    return DecisionRecord(
        bucket="clip-moderation-uploads-123456789012-us-east-1",
        key="uploads/2026/12/02/some-user/IMG_20261202_123456.jpg",
        version="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        etag='"d41d8cd98f00b204e9800998ecf8427e"',
        judged_by="default@0123456789abcdef",
        verdict="quarantine",
        top=names[0],
        score=0.912345,
        scores={n: 0.123456 for n in names},
        flagged=(names[0],),
        policy="default@0123456789ab",
        model_id="openai/clip-vit-base-patch32",
        model_fingerprint="0123456789abcdef",
        precision="onnx:int8",
        state="done",
    )
