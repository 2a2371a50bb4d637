"""The moderation tags on S3 objects, and how they merge with the tags an object already has.

S3 allows 10 tags per object. The user's own tags are always kept; our earlier moderation tags are
replaced; the new moderation tags go in priority order (`moderation-verdict` first) while room remains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from handler.core.scoring import Decision

VERDICT = "moderation-verdict"
POLICY = "moderation-policy"
TOP = "moderation-top"
SCORE = "moderation-score"
REASON = "moderation-reason"
FIRST_FLAGGED = "moderation-first-flagged-s"  # videos: where the first flagged segment starts
OURS = frozenset({VERDICT, POLICY, TOP, SCORE, REASON, FIRST_FLAGGED})
ERROR = "error"
MAX_TAGS = 10
MAX_VALUE_LENGTH = 256

# S3 tag values: letters, digits, spaces and + - = . _ : / @ (Unicode letters and digits count).
_NOT_ALLOWED = re.compile(r"[^\w\s+\-=.:/@]")


def tag_value(text: str) -> str:
    """`text` with every character S3 refuses in a tag value replaced by a space, trimmed to 256."""
    cleaned = _NOT_ALLOWED.sub(" ", text)
    cleaned = " ".join(cleaned.split())
    return cleaned[:MAX_VALUE_LENGTH].strip()


def decision_tags(decision: Decision) -> dict[str, str]:
    """The tags for a verdict, most important first; the policy's score heads (`moderation-<name>`) last."""
    tags = {
        VERDICT: decision.verdict.value,
        POLICY: tag_value(decision.policy.policy_id),
        TOP: tag_value(decision.top),
        SCORE: f"{decision.top_score:.4f}",
    }
    tags.update({f"moderation-{name}": f"{value:.4f}" for name, value in decision.head_scores.items()})
    return tags


def error_tags(reason: str, policy_id: str) -> dict[str, str]:
    """The tags for an object that could not be judged (not an image, too large, undecodable)."""
    return {VERDICT: ERROR, POLICY: tag_value(policy_id), REASON: tag_value(reason) or ERROR}


@dataclass(frozen=True)
class MergedTags:
    tags: dict[str, str]
    dropped: tuple[str, ...]  # moderation tag keys that did not fit

    @property
    def has_verdict(self) -> bool:
        return VERDICT in self.tags


def merge_tags(existing: Mapping[str, str], moderation: Mapping[str, str]) -> MergedTags:
    """Every user tag (but for keys `moderation` sets anew), then as many of `moderation` (in its order)
    as fit in S3's 10."""
    merged = {k: v for k, v in existing.items() if k not in OURS and k not in moderation}
    dropped = []
    for key, value in moderation.items():
        if len(merged) < MAX_TAGS:
            merged[key] = value
        else:
            dropped.append(key)
    return MergedTags(merged, tuple(dropped))


def judged_verdict(tags: Mapping[str, str], policy_id: str) -> str | None:
    """The verdict already on the object if it was judged by this very policy, else None."""
    if tags.get(POLICY) == tag_value(policy_id):
        return tags.get(VERDICT)
    return None


def from_tag_set(tag_set: Iterable[Mapping[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def to_tag_set(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def to_header(tags: Mapping[str, str]) -> str:
    """The URL-query form CopyObject/PutObject take in `Tagging`."""
    return urlencode(dict(tags))
