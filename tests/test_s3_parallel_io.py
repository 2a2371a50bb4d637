"""S3 round trips of one event's objects overlap (they dominate on real S3); results do not change."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from handler.core.moderator import Moderator
from handler.s3.events import ObjectRef
from handler.s3.moderation import Outcome, moderate_objects
from handler.s3.tags import VERDICT
from tests.conftest import image_bytes
from tests.s3_doubles import QUARANTINE, UPLOADS, make_buckets, tags_of, write_policy

LATENCY_S = 0.15


class SlowS3:
    """The real (moto) client with a fixed network latency on every call, like S3 seen from Lambda."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def call(**kwargs: Any) -> Any:
            time.sleep(LATENCY_S)
            return attribute(**kwargs)

        return call


def run(s3: Any, mod: Moderator, keys: list[str]) -> tuple[list[Any], float]:
    refs = [ObjectRef(UPLOADS, key, None) for key in keys]
    started = time.perf_counter()
    results = moderate_objects(refs, client=SlowS3(s3), moderator=mod)
    return results, time.perf_counter() - started


def test_object_io_of_one_event_overlaps(s3: Any, tmp_path: Path, make_moderator: Any) -> None:
    make_buckets(s3)
    keys = [f"photos/{i}.png" for i in range(8)]
    for key in keys:
        s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("PNG"))
    policy = [write_policy(tmp_path, "review")]
    sequential = make_moderator(moderation_policy=policy, quarantine_bucket=QUARANTINE, s3_io_workers=1)
    parallel = make_moderator(moderation_policy=policy, quarantine_bucket=QUARANTINE, s3_io_workers=8)

    serial_results, serial_s = run(s3, sequential, keys[:4])
    parallel_results, parallel_s = run(s3, parallel, keys[4:])

    # 5 calls an object (head, tags, range GET, GET, put tags) x 4 objects x 0.15 s = 3 s when serial
    assert serial_s > 4 * 5 * LATENCY_S
    assert parallel_s < serial_s / 2.5
    for result in serial_results + parallel_results:
        assert (result.outcome, result.verdict) == (Outcome.judged, "review")
    assert [r.ref.key for r in parallel_results] == keys[4:]
    assert all(tags_of(s3, UPLOADS, key)[VERDICT] == "review" for key in keys)
