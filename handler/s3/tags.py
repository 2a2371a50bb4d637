"""The moderation tags on S3 objects, and how they merge with the tags an object already has.

S3 allows 10 tags per object. The user's own tags are always kept; our earlier moderation tags are
replaced; the new moderation tags go in priority order (`moderation-verdict` first) while room remains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from handler.decisions.record import DecisionRecord

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


def record_tags(record: DecisionRecord) -> dict[str, str]:
    """The tags for a recorded verdict, most important first; score heads (`moderation-<name>`) and
    video tags last. Errors carry their reason instead of a top category."""
    tags = {VERDICT: record.verdict, POLICY: tag_value(record.policy)}
    if record.reason is not None:
        tags[REASON] = tag_value(record.reason) or ERROR
    if record.top is not None and record.score is not None:
        tags[TOP] = tag_value(record.top)
        tags[SCORE] = f"{record.score:.4f}"
    tags.update({f"moderation-{name}": f"{value:.4f}" for name, value in record.head_scores.items()})
    tags.update(record.extra_tags)
    return tags


@dataclass(frozen=True)
class MergedTags:
    tags: dict[str, str]
    dropped: tuple[str, ...]  # moderation tag keys that did not fit
    displaced: dict[str, str]  # user tags that yielded to moderation-verdict (kept in the record)


def merge_tags(existing: Mapping[str, str], moderation: Mapping[str, str]) -> MergedTags:
    """User tags (but for keys `moderation` sets anew), with room made for `moderation-verdict` if need be,
    then as many of `moderation` (in its order) as fit in S3's 10."""
    user = {k: v for k, v in existing.items() if k not in OURS and k not in moderation}
    displaced: dict[str, str] = {}
    overflow = len(user) - (MAX_TAGS - 1) if VERDICT in moderation else 0
    if overflow > 0:
        lookalikes = sorted((k for k in user if k.startswith("moderation-")), reverse=True)
        others = sorted((k for k in user if not k.startswith("moderation-")), reverse=True)
        for key in [*lookalikes, *others][:overflow]:
            displaced[key] = user.pop(key)
    merged = dict(user)
    dropped = []
    for key, value in moderation.items():
        if len(merged) < MAX_TAGS:
            merged[key] = value
        else:
            dropped.append(key)
    return MergedTags(merged, tuple(dropped), displaced)


def from_tag_set(tag_set: Iterable[Mapping[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tag_set}


def to_tag_set(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def to_header(tags: Mapping[str, str]) -> str:
    """The URL-query form CopyObject/PutObject take in `Tagging`."""
    return urlencode(dict(tags))
