"""S3 round trips of one event's objects overlap (they dominate on real S3); results do not change.

Counted, not timed: the client double records how many calls are in flight at once, so two busy shared
cores cannot fail the test, and a serial implementation cannot pass it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from handler.core.moderator import Moderator
from handler.s3.events import ObjectRef
from handler.s3.moderation import Outcome, moderate_objects
from handler.s3.tags import VERDICT
from tests.conftest import image_bytes
from tests.s3_doubles import QUARANTINE, UPLOADS, make_buckets, tags_of, write_policy

GATHER_TIMEOUT_S = 10.0


class CountingS3:
    """The real (moto) client, counting the objects whose calls are in flight (one object's own calls
    may overlap: its tags and first bytes are read at once). With `gather=n`, each call waits (up to
    GATHER_TIMEOUT_S) until n objects have had calls in flight at once: overlap is then certain, however
    slow the threads are to start, and a flow that reads one object at a time stays at a peak of 1."""

    def __init__(self, real: Any, gather: int = 1) -> None:
        self.real, self.gather = real, gather
        self.peak = self.calls = 0
        self.in_flight: dict[str, int] = {}
        self._changed = threading.Condition()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def call(**kwargs: Any) -> Any:
            key = str(kwargs.get("Key"))
            with self._changed:
                self.in_flight[key] = self.in_flight.get(key, 0) + 1
                self.calls += 1
                self.peak = max(self.peak, len(self.in_flight))
                self._changed.notify_all()
                self._changed.wait_for(lambda: self.peak >= self.gather, timeout=GATHER_TIMEOUT_S)
            try:
                return attribute(**kwargs)
            finally:
                with self._changed:
                    self.in_flight[key] -= 1
                    if not self.in_flight[key]:
                        del self.in_flight[key]

        return call


def run(s3: CountingS3, mod: Moderator, keys: list[str]) -> list[Any]:
    refs = [ObjectRef(UPLOADS, key, None) for key in keys]
    return moderate_objects(refs, client=s3, moderator=mod)


def test_object_io_of_one_event_overlaps(s3: Any, tmp_path: Path, make_moderator: Any) -> None:
    make_buckets(s3)
    keys = [f"photos/{i}.png" for i in range(8)]
    for key in keys:
        s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("PNG"))
    policy = [write_policy(tmp_path, "review")]
    sequential = make_moderator(moderation_policy=policy, quarantine_bucket=QUARANTINE, s3_io_workers=1)
    parallel = make_moderator(moderation_policy=policy, quarantine_bucket=QUARANTINE, s3_io_workers=8)

    serial_client, parallel_client = CountingS3(s3), CountingS3(s3, gather=4)
    serial_results = run(serial_client, sequential, keys[:4])
    parallel_results = run(parallel_client, parallel, keys[4:])

    assert serial_client.peak == 1, "s3_io_workers=1 reads one object at a time"
    assert parallel_client.peak == 4, "the four objects' calls are in flight together"
    assert parallel_client.calls == serial_client.calls, "overlapping changes no call"
    for result in serial_results + parallel_results:
        assert (result.outcome, result.verdict) == (Outcome.judged, "review")
    assert [r.ref.key for r in parallel_results] == keys[4:]
    assert all(tags_of(s3, UPLOADS, key)[VERDICT] == "review" for key in keys)


def test_a_full_sqs_batch_is_read_in_one_wave_with_the_defaults(
    s3: Any, tmp_path: Path, make_moderator: Any
) -> None:
    """All objects of one SQS batch (the template's BatchSize) have their S3 calls in flight at once, so
    on real S3 a batch costs one object's round trips, not two waves of them."""
    from tests.test_template import load_template

    mappings = [
        r["Properties"]
        for r in load_template()["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    batch = max(int(m["BatchSize"]) for m in mappings)
    make_buckets(s3)
    keys = [f"batch/{i}.png" for i in range(batch)]
    for key in keys:
        s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("PNG"))
    mod = make_moderator(moderation_policy=[write_policy(tmp_path, "review")], quarantine_bucket=QUARANTINE)
    client = CountingS3(s3, gather=batch)

    results = run(client, mod, keys)

    assert client.peak == batch, f"{client.peak} of the batch's {batch} objects were read at once"
    assert all((r.outcome, r.verdict) == (Outcome.judged, "review") for r in results)


def test_an_objects_tags_and_first_bytes_are_read_at_once(
    s3: Any, tmp_path: Path, make_moderator: Any
) -> None:
    """After the head pins the version, the tags and the ranged GET that sniffs the format go out
    together (and the decision table is asked meanwhile): three round trips an object, not five."""
    make_buckets(s3)
    s3.put_object(Bucket=UPLOADS, Key="a.png", Body=image_bytes("PNG"))
    both = threading.Barrier(2, timeout=GATHER_TIMEOUT_S)
    met: list[str] = []

    class Meeting:
        def __getattr__(self, name: str) -> Any:
            attribute = getattr(s3, name)
            if name not in ("get_object_tagging", "get_object"):
                return attribute

            def call(**kwargs: Any) -> Any:
                if name == "get_object_tagging" or "Range" in kwargs:
                    try:
                        both.wait()
                        met.append(name)
                    except threading.BrokenBarrierError:
                        pass
                return attribute(**kwargs)

            return call

    mod = make_moderator(moderation_policy=[write_policy(tmp_path, "review")], quarantine_bucket=QUARANTINE)
    [result] = run(Meeting(), mod, ["a.png"])  # type: ignore[arg-type]

    assert sorted(met) == ["get_object", "get_object_tagging"], "the two reads waited for each other"
    assert (result.outcome, result.verdict) == (Outcome.judged, "review")
