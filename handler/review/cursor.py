"""The review queue's page cursor: DynamoDB's LastEvaluatedKey as an opaque URL-safe string, checked on
the way back in (a forged one can only start the same query elsewhere, never read another index)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from handler.decisions.record import REVIEW_QUEUE
from handler.exceptions import InputError

_KEYS = frozenset({"pk", "sk", "queue", "judged_at"})
MAX_CURSOR_LENGTH = 4096


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    problem = "cursor is not one this API gave out; start again without it"
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InputError(problem)
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InputError(problem) from exc
    if not isinstance(key, dict) or set(key) != _KEYS:  # the index's and the table's keys, all of them
        raise InputError(problem)
    for value in key.values():
        if not (isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)):
            raise InputError(problem)
    if key["queue"]["S"] != REVIEW_QUEUE:
        raise InputError(problem)
    return key
