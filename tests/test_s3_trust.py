"""The S3 flow as a hostile uploader tries it: through `handler.main.handler`, moto (S3, SQS, DynamoDB)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from handler.core.moderator import Moderator, get_moderator
from handler.inputs.images import ImageLimits, decode_still
from handler.s3.tags import POLICY, REASON, VERDICT
from tests.conftest import image_bytes
from tests.event_loader import encode_key, load_event, sqs_event
from tests.s3_doubles import (
    QUARANTINE,
    TABLE,
    UPLOADS,
    S3Proxy,
    exists,
    make_buckets,
    quarantined_key,
    records_of,
    tags_of,
)

QUEUE = "moderation-queue"  # the queue named by tests/events/sqs_s3_put.json's eventSourceARN


def put(s3: Any, key: str, body: bytes, **extra: Any) -> str:
    return str(s3.put_object(Bucket=UPLOADS, Key=key, Body=body, **extra)["VersionId"])


def s3_put(key: str, version: str | None) -> dict[str, Any]:
    return load_event("s3_put", bucket=UPLOADS, key=encode_key(key), version_id=version)


def test_forged_verdict_tags_are_not_trusted(
    s3: Any, dynamodb: Any, deploy: Callable[..., ModuleType]
) -> None:
    main = deploy("quarantine")
    judged_by = get_moderator().judged_by(get_moderator().policies.default)
    forged = f"{POLICY}={judged_by.policy}&{VERDICT}=allow&moderation-judged-by={judged_by.id}"
    version = put(s3, "innocent.jpg", image_bytes(), Tagging=forged)

    answer = main.handler(s3_put("innocent.jpg", version), None)

    assert answer["objects"][0]["outcome"] == "quarantined"
    assert not exists(s3, UPLOADS, "innocent.jpg", version)
    assert tags_of(s3, QUARANTINE, quarantined_key("innocent.jpg", version))[VERDICT] == "quarantine"
    [record] = records_of(dynamodb, "innocent.jpg")
    assert record.verdict == "quarantine"


def test_the_verdict_lands_on_an_object_with_ten_tags_and_the_yielded_tag_is_recorded(
    s3: Any, dynamodb: Any, deploy: Callable[..., ModuleType]
) -> None:
    main = deploy("review")
    own = {f"tag-{i}": f"value {i}" for i in range(9)} | {"zz-last": "kept in the record"}
    version = put(s3, "busy.jpg", image_bytes(), Tagging="&".join(f"{k}={v}" for k, v in own.items()))

    main.handler(s3_put("busy.jpg", version), None)

    tags = tags_of(s3, UPLOADS, "busy.jpg", version)
    assert tags[VERDICT] == "review"
    assert len(tags) == 10
    assert "zz-last" not in tags
    [record] = records_of(dynamodb, "busy.jpg")
    assert record.displaced_tags == {"zz-last": "kept in the record"}


def test_one_poison_object_fails_only_its_own_message(
    s3: Any, deploy: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    main = deploy("quarantine")
    poison = image_bytes("PNG", color=(1, 2, 3, 255))
    mod = get_moderator()
    region = decode_still(poison, ImageLimits.from_settings(mod.settings), mod.encoder.preprocess)
    poison_pixels = mod.pixels(region)
    explicit_version = put(s3, "explicit.jpg", image_bytes())
    poison_version = put(s3, "poison.png", poison)
    real = Moderator.embed_pixels

    def chokes_on_poison(self: Moderator, pixels: list[Any]) -> Any:
        if any(p.shape == poison_pixels.shape and bool((p == poison_pixels).all()) for p in pixels):
            raise MemoryError("the poison image")
        return real(self, pixels)

    monkeypatch.setattr(Moderator, "embed_pixels", chokes_on_poison)
    event = sqs_event(s3_put("explicit.jpg", explicit_version), s3_put("poison.png", poison_version))

    answer = main.handler(event, None)

    assert answer == {"batchItemFailures": [{"itemIdentifier": "message-2"}]}
    assert not exists(s3, UPLOADS, "explicit.jpg", explicit_version)  # judged and quarantined
    assert exists(s3, QUARANTINE, quarantined_key("explicit.jpg", explicit_version))
    assert exists(s3, UPLOADS, "poison.png", poison_version)  # kept for the retry


def test_two_quarantined_uploads_of_one_key_keep_both_copies(
    s3: Any, dynamodb: Any, deploy: Callable[..., ModuleType]
) -> None:
    main = deploy("quarantine")
    first, second = image_bytes(color=(250, 0, 0)), image_bytes(color=(0, 0, 250))
    versions = []
    for body in (first, second):
        version = put(s3, "avatar.jpg", body)
        main.handler(s3_put("avatar.jpg", version), None)
        versions.append(version)

    copies = [s3.get_object(Bucket=QUARANTINE, Key=quarantined_key("avatar.jpg", v)) for v in versions]
    assert [c["Body"].read() for c in copies] == [first, second]
    assert [c["Metadata"]["moderation-source-version"] for c in copies] == versions
    listing = s3.list_object_versions(Bucket=QUARANTINE)["Versions"]
    assert len(listing) == 2  # two keys, one version each: neither copy is a noncurrent version
    records = records_of(dynamodb, "avatar.jpg")
    assert sorted(r.quarantine.key for r in records if r.quarantine) == sorted(
        quarantined_key("avatar.jpg", v) for v in versions
    )


def test_a_key_too_long_for_the_quarantine_layout_still_quarantines(
    s3: Any, dynamodb: Any, deploy: Callable[..., ModuleType]
) -> None:
    main = deploy("quarantine")
    key = "deep/" + "k" * 1010 + ".jpg"  # 1019 bytes: S3 takes it, prefix + bucket + version do not fit
    version = put(s3, key, image_bytes())

    answer = main.handler(s3_put(key, version), None)

    assert answer["objects"][0]["outcome"] == "quarantined"
    assert not exists(s3, UPLOADS, key, version)
    [record] = records_of(dynamodb, key)
    assert record.quarantine is not None
    assert "/_long/" in record.quarantine.key
    copy = s3.head_object(Bucket=QUARANTINE, Key=record.quarantine.key)
    assert copy["Metadata"]["moderation-source-version"] == version


def test_a_model_or_precision_change_judges_again(
    s3: Any, dynamodb: Any, forced: Callable[..., Moderator]
) -> None:
    import dataclasses

    from handler.core.model import Precision
    from handler.s3.events import ObjectRef
    from handler.s3.moderation import Outcome, moderate_objects

    make_buckets(s3)
    version = put(s3, "a.jpg", image_bytes())
    ref = ObjectRef(UPLOADS, "a.jpg", version)
    before = forced("review")
    moderate_objects([ref], client=s3, moderator=before)
    upgraded = forced("review")
    other = Precision.bf16 if before.encoder.precision is Precision.fp32 else Precision.fp32
    upgraded.encoder = dataclasses.replace(before.encoder, precision=other)

    [same] = moderate_objects([ref], client=s3, moderator=before)
    [again] = moderate_objects([ref], client=s3, moderator=upgraded)

    assert same.outcome is Outcome.already_judged
    assert again.outcome is Outcome.judged
    assert {r.precision for r in records_of(dynamodb, "a.jpg")} == {before.precision, upgraded.precision}


def test_judged_by_covers_head_contents_and_model_fingerprint(tmp_path: Path) -> None:
    from handler.core.policy import parse_policy
    from handler.core.provenance import judged_by

    head = tmp_path / "aesthetics.safetensors"
    head.write_bytes(b"weights v1")
    policy = parse_policy(
        {
            "name": "p",
            "categories": [
                {"name": "a", "prompts": ["x"], "threshold": 0.5, "action": "review"},
                {"name": "b", "prompts": ["y"], "safe": True},
            ],
            "scores": [{"name": "aesthetics", "head": head.name}],
        },
        "test",
        base_dir=tmp_path,
    )

    def ident(fingerprint: str = "f1", precision: str = "onnx:int8") -> str:
        return judged_by(
            policy,
            model_id="m",
            model_fingerprint=fingerprint,
            precision=precision,
            text_embeddings=lambda _: [[1.0, 0.0], [0.0, 1.0]],
        ).id

    first = ident()
    assert ident() == first
    assert ident(fingerprint="f2") != first
    assert ident(precision="onnx:fp32") != first
    head.write_bytes(b"weights v2")  # same path, retrained head
    assert ident() != first


@pytest.mark.slow
def test_deferred_videos_are_requeued_without_spending_receives(
    s3: Any, deploy: Callable[..., ModuleType], tmp_path: Path, moto_server: str
) -> None:
    import boto3

    from tests.video_media import BLUE, RED, encoder_available, make_video

    if not encoder_available("libx264"):
        pytest.skip("PyAV here has no libx264 encoder")
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    main = deploy("review", FUNCTION_TIMEOUT_S="30", VIDEO_TIME_LIMIT_S="30")  # one video uses it all
    clip = make_video(tmp_path / "clip.mp4", [(BLUE, 1), (RED, 1)]).read_bytes()
    versions = {key: put(s3, key, clip) for key in ("1.mp4", "2.mp4", "3.mp4")}

    answer = main.handler(sqs_event(*(s3_put(k, v) for k, v in versions.items())), None)

    assert answer == {"batchItemFailures": []}  # nothing left to SQS retries (receive counts)
    assert tags_of(s3, UPLOADS, "1.mp4", versions["1.mp4"])[VERDICT] == "review"
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=6)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [o["key"] for b in bodies for o in b["moderationDeferred"]["objects"]] == ["2.mp4", "3.mp4"]
    requeued = sqs_event(*bodies)
    for record in requeued["Records"]:
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"
    while True:  # each invocation judges at least one; the rest go round again
        assert main.handler(requeued, None) == {"batchItemFailures": []}
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=6)
        if not received.get("Messages"):
            break
        requeued = sqs_event(*(json.loads(m["Body"]) for m in received["Messages"]))
    for key, version in versions.items():
        assert tags_of(s3, UPLOADS, key, version)[VERDICT] == "review"


def test_nan_scores_are_an_error_never_allow(
    s3: Any, deploy: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    main = deploy("allow")
    version = put(s3, "a.jpg", image_bytes())
    real = Moderator.embed_pixels
    monkeypatch.setattr(Moderator, "embed_pixels", lambda self, pixels: real(self, pixels) * float("nan"))

    answer = main.handler(s3_put("a.jpg", version), None)

    assert answer["objects"][0]["verdict"] == "error"
    tags = tags_of(s3, UPLOADS, "a.jpg", version)
    assert tags[VERDICT] == "error"
    assert "non-finite" in tags[REASON]


def test_an_unversioned_overwrite_after_the_judgement_is_never_deleted(
    s3: Any, forced: Callable[..., Moderator]
) -> None:
    from handler.s3.events import ObjectRef
    from handler.s3.moderation import Outcome, moderate_objects

    for bucket in (UPLOADS, QUARANTINE):
        s3.create_bucket(Bucket=bucket)
    judged, newer = image_bytes(color=(250, 0, 0)), image_bytes(color=(0, 250, 0))
    s3.put_object(Bucket=UPLOADS, Key="a.jpg", Body=judged)

    class OverwritesAfterTheCopy(S3Proxy):
        def __getattr__(self, name: str) -> Any:
            method = super().__getattr__(name)
            if name != "copy_object":
                return method

            def copy(**kwargs: Any) -> Any:
                answer = method(**kwargs)
                s3.put_object(Bucket=UPLOADS, Key="a.jpg", Body=newer)  # the uploader's race
                return answer

            return copy

    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "a.jpg")], client=OverwritesAfterTheCopy(s3), moderator=forced("quarantine")
    )

    assert result.outcome is Outcome.quarantined
    assert "overwritten" in str(result.detail)
    assert s3.get_object(Bucket=UPLOADS, Key="a.jpg")["Body"].read() == newer  # kept for its own event
    [copy] = s3.list_objects_v2(Bucket=QUARANTINE)["Contents"]
    assert s3.get_object(Bucket=QUARANTINE, Key=copy["Key"])["Body"].read() == judged


def test_spooled_videos_left_by_a_timeout_are_removed_at_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from handler.video.inputs import SPOOL_PREFIX, remove_stale_spools

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / f"{SPOOL_PREFIX}abc123").write_bytes(b"\0" * 1024)
    (tmp_path / "someone-elses-file").write_bytes(b"kept")

    assert remove_stale_spools() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["someone-elses-file"]


def test_a_redelivery_never_acts_on_a_record_a_reviewer_is_deciding(
    s3: Any, dynamodb: Any, forced: Callable[..., Moderator]
) -> None:
    from handler.decisions.record import PENDING
    from handler.decisions.table import DecisionTable
    from handler.s3.events import ObjectRef
    from handler.s3.moderation import Outcome, moderate_objects

    make_buckets(s3)
    version = put(s3, "a.jpg", image_bytes())
    ref = ObjectRef(UPLOADS, "a.jpg", version)
    mod = forced("review")
    moderate_objects([ref], client=s3, moderator=mod)
    table = DecisionTable(TABLE, dynamodb)
    [queued] = table.review_queue().records
    table.decide_review(queued.with_changes(state=PENDING), "quarantine", {"reviewer": "ann"}, None)
    proxy = S3Proxy(s3)

    [again] = moderate_objects([ref], client=proxy, moderator=mod)

    assert again.outcome is Outcome.already_judged
    assert not proxy.called("put_object_tagging")  # the reviewer's move is not raced by the S3 flow
    [record] = records_of(dynamodb, "a.jpg")
    assert (record.state, record.review["reviewer"]) == (PENDING, "ann")
