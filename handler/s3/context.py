"""What every phase of one S3 event's moderation shares: clients, the model, the policy, the record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handler.core.moderator import Moderator
from handler.core.policy import Policy
from handler.core.provenance import JudgedBy
from handler.core.scoring import Decision
from handler.decisions.record import DecisionRecord, new_record
from handler.decisions.table import DecisionTable
from handler.media.judge import MediaLimits
from handler.s3.video import InvocationClock
from handler.s3.work import Item
from handler.settings import Settings


@dataclass
class FlowContext:
    s3: Any
    mod: Moderator
    policy: Policy
    judged_by: JudgedBy
    table: DecisionTable | None
    clock: InvocationClock
    limits: MediaLimits

    @property
    def settings(self) -> Settings:
        return self.mod.settings

    def _record(self, item: Item, **fields: Any) -> DecisionRecord:
        ref = item.ref
        return new_record(
            ref.bucket, ref.key, ref.version_id, item.head.get("ETag"), self.judged_by, **fields
        )

    def decided(self, item: Item, decision: Decision, extra_tags: Mapping[str, str] | None = None) -> None:
        """The model's verdict becomes the item's record to act on."""
        item.decision = decision
        item.record = self._record(item, decision=decision, extra_tags=dict(extra_tags or {}))
        item.pixels = item.sequence = None

    def errored(self, item: Item, reason: str) -> None:
        """The object cannot be judged (not an image, too large, undecodable): an `error` record."""
        item.record = self._record(item, verdict="error", reason=reason)
        item.pixels = item.sequence = None
