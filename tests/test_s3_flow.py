"""The S3 moderation flow against moto in server mode: tags, quarantine, idempotency, bad objects."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from handler.core.moderator import Moderator
from handler.logs import JsonMessageFormatter
from handler.s3.events import ObjectRef
from handler.s3.moderation import Outcome, moderate_objects
from handler.s3.tags import POLICY, REASON, SCORE, TOP, VERDICT, tag_value
from tests.conftest import image_bytes
from tests.s3_doubles import (
    PREFIX,
    QUARANTINE,
    UPLOADS,
    S3Proxy,
    exists,
    make_buckets,
    quarantined_key,
    tags_of,
    write_policy,
)

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"
MODERATION_KEYS = {VERDICT, POLICY, TOP, SCORE}


def put(s3: Any, key: str, body: bytes, **extra: Any) -> str:
    """Upload and return the new version id."""
    response = s3.put_object(Bucket=UPLOADS, Key=key, Body=body, **extra)
    return str(response["VersionId"])


def test_allow_keeps_user_tags_and_adds_moderation_tags(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    mod = forced("allow")
    version = put(s3, "cat.jpg", image_bytes(), Tagging="owner=alice&project=zoo")

    [result] = moderate_objects([ObjectRef(UPLOADS, "cat.jpg", version)], client=s3, moderator=mod)

    assert result.ok
    assert result.outcome is Outcome.judged
    assert result.verdict == "allow"
    tags = tags_of(s3, UPLOADS, "cat.jpg", version)
    assert tags["owner"] == "alice"
    assert tags["project"] == "zoo"
    assert tags[VERDICT] == "allow"
    assert tags[POLICY] == mod.policies.default.policy_id
    assert "@" in tags[POLICY]
    assert tags[TOP] in {"bad", "meh", "fine"}
    assert re.fullmatch(r"[01]\.\d{4}", tags[SCORE])
    assert exists(s3, UPLOADS, "cat.jpg", version)


@pytest.mark.parametrize(
    ("user_tags", "moderation_kept"),
    [
        (7, {VERDICT, POLICY, TOP}),
        (8, {VERDICT, POLICY}),
        (9, {VERDICT}),
        (10, {VERDICT}),
    ],
)
def test_verdict_always_lands_and_other_user_tags_are_kept(
    s3: Any, forced: Callable[..., Moderator], user_tags: int, moderation_kept: set[str]
) -> None:
    make_buckets(s3)
    own = {f"user-{i}": f"value {i}" for i in range(user_tags)}
    version = put(s3, "full.jpg", image_bytes(), Tagging="&".join(f"{k}={v}" for k, v in own.items()))

    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "full.jpg", version)], client=s3, moderator=forced("review")
    )

    assert result.ok
    assert result.verdict == "review"
    tags = tags_of(s3, UPLOADS, "full.jpg", version)
    # With 10 of its own, the alphabetically last user tag yields to the verdict (the record keeps it).
    yielded = {"user-9"} if user_tags == 10 else set()
    assert {k: v for k, v in tags.items() if k.startswith("user-")} == {
        k: v for k, v in own.items() if k not in yielded
    }
    assert set(tags) - set(own) == moderation_kept
    assert tags[VERDICT] == "review"


def test_earlier_moderation_tags_are_replaced_by_a_new_policy(
    s3: Any, forced: Callable[..., Moderator]
) -> None:
    make_buckets(s3)
    version = put(s3, "a.jpg", image_bytes(), Tagging="owner=alice&moderation-notes=seen%20by%20a%20human")
    ref = ObjectRef(UPLOADS, "a.jpg", version)
    moderate_objects([ref], client=s3, moderator=forced("allow"))
    review = forced("review")

    [result] = moderate_objects([ref], client=s3, moderator=review)

    assert result.outcome is Outcome.judged
    assert result.verdict == "review"
    tags = tags_of(s3, UPLOADS, "a.jpg", version)
    assert tags[VERDICT] == "review"
    assert tags[POLICY] == review.policies.default.policy_id
    assert tags["owner"] == "alice"
    assert tags["moderation-notes"] == "seen by a human"  # a user tag that merely looks like ours
    assert len(tags) == 6


def test_tag_values_only_use_characters_s3_allows() -> None:
    assert tag_value("size 12 (limit 10); see: MAX_OBJECT_BYTES!") == "size 12 limit 10 see: MAX_OBJECT_BYTES"
    assert tag_value("default@0123abcd") == "default@0123abcd"
    assert tag_value("été + 1 = 2 / x_y") == "été + 1 = 2 / x_y"
    assert len(tag_value("x" * 500)) == 256


def test_quarantine_moves_the_exact_version_with_bytes_type_metadata_and_tags(
    s3: Any, forced: Callable[..., Moderator]
) -> None:
    make_buckets(s3)
    flagged = image_bytes("PNG", color=(10, 200, 10, 255))
    version = put(
        s3,
        "album/bad pic.png",
        flagged,
        ContentType="image/png",
        Metadata={"uploader": "bob"},
        Tagging="owner=alice",
    )
    newer = put(s3, "album/bad pic.png", image_bytes())  # a later upload of the same key stays untouched
    mod = forced("quarantine")

    [result] = moderate_objects([ObjectRef(UPLOADS, "album/bad pic.png", version)], client=s3, moderator=mod)

    assert result.ok
    assert result.outcome is Outcome.quarantined
    assert not exists(s3, UPLOADS, "album/bad pic.png", version)
    assert exists(s3, UPLOADS, "album/bad pic.png", newer)
    where = quarantined_key("album/bad pic.png", version)
    copy = s3.get_object(Bucket=QUARANTINE, Key=where)
    assert copy["Body"].read() == flagged
    assert copy["ContentType"] == "image/png"
    assert copy["Metadata"]["uploader"] == "bob"
    assert copy["Metadata"]["moderation-source-bucket"] == UPLOADS
    assert copy["Metadata"]["moderation-source-key"] == "album/bad%20pic.png"
    assert copy["Metadata"]["moderation-source-version"] == version
    assert copy["Metadata"]["moderation-verdict"] == "quarantine"
    tags = tags_of(s3, QUARANTINE, where)
    assert tags["owner"] == "alice"
    assert tags[VERDICT] == "quarantine"
    assert tags[POLICY] == mod.policies.default.policy_id


def test_quarantine_in_an_unversioned_bucket(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3, versioned=False)
    body = image_bytes()
    s3.put_object(Bucket=UPLOADS, Key="a.jpg", Body=body, ContentType="image/jpeg")

    [result] = moderate_objects([ObjectRef(UPLOADS, "a.jpg")], client=s3, moderator=forced("quarantine"))

    assert result.outcome is Outcome.quarantined
    assert not exists(s3, UPLOADS, "a.jpg")
    etag = hashlib.md5(body).hexdigest()
    assert (
        s3.get_object(Bucket=QUARANTINE, Key=quarantined_key("a.jpg", f"etag-{etag}"))["Body"].read() == body
    )


def test_quarantine_verdict_without_a_quarantine_bucket_only_tags(
    s3: Any, tmp_path: Path, make_moderator: Callable[..., Moderator], caplog: pytest.LogCaptureFixture
) -> None:
    make_buckets(s3)
    version = put(s3, "a.jpg", image_bytes())
    mod = make_moderator(moderation_policy=[write_policy(tmp_path, "quarantine")])

    with caplog.at_level(logging.WARNING, logger="handler"):
        [result] = moderate_objects([ObjectRef(UPLOADS, "a.jpg", version)], client=s3, moderator=mod)

    assert result.ok
    assert result.verdict == "quarantine"
    assert tags_of(s3, UPLOADS, "a.jpg", version)[VERDICT] == "quarantine"
    assert "QUARANTINE_BUCKET is not set" in caplog.text


def test_duplicate_delivery_changes_nothing(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    mod = forced("review")
    version = put(s3, "a.jpg", image_bytes())
    ref = ObjectRef(UPLOADS, "a.jpg", version)
    moderate_objects([ref], client=s3, moderator=mod)
    before = tags_of(s3, UPLOADS, "a.jpg", version)
    proxy = S3Proxy(s3)

    [again] = moderate_objects([ref], client=proxy, moderator=mod)

    assert again.ok
    assert again.outcome is Outcome.already_judged
    assert again.verdict == "review"
    # The table answers: no body read, no write. (The tags and first bytes are read while the table is
    # asked, one round trip for all three, so a first delivery waits three round trips, not five.)
    assert {name for name, _ in proxy.calls} <= {"head_object", "get_object_tagging", "get_object"}
    assert all("Range" in call for call in proxy.called("get_object"))
    assert tags_of(s3, UPLOADS, "a.jpg", version) == before


def test_same_version_twice_in_one_batch_is_judged_once(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    version = put(s3, "a.jpg", image_bytes())
    ref = ObjectRef(UPLOADS, "a.jpg", version)
    proxy = S3Proxy(s3)

    results = moderate_objects([ref, ref], client=proxy, moderator=forced("review"))

    assert [r.outcome for r in results] == [Outcome.judged, Outcome.judged]
    assert len(proxy.called("put_object_tagging")) == 1


def test_duplicate_delivery_after_quarantine_is_a_success(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    mod = forced("quarantine")
    version = put(s3, "a.jpg", image_bytes())
    ref = ObjectRef(UPLOADS, "a.jpg", version)
    moderate_objects([ref], client=s3, moderator=mod)
    proxy = S3Proxy(s3)

    [again] = moderate_objects([ref], client=proxy, moderator=mod)

    assert again.ok
    assert again.outcome is Outcome.in_quarantine
    assert not proxy.called("copy_object")
    assert not proxy.called("delete_object")


def test_reordered_delivery_judges_each_version_on_its_own(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    mod = forced("review")
    older = put(s3, "a.jpg", image_bytes(color=(1, 2, 3)))
    newer = put(s3, "a.jpg", image_bytes(color=(200, 200, 200)))
    moderate_objects([ObjectRef(UPLOADS, "a.jpg", newer)], client=s3, moderator=mod)
    newer_tags = tags_of(s3, UPLOADS, "a.jpg", newer)
    proxy = S3Proxy(s3)

    [late] = moderate_objects([ObjectRef(UPLOADS, "a.jpg", older)], client=proxy, moderator=mod)

    assert late.ok
    assert late.outcome is Outcome.judged
    assert [call["VersionId"] for call in proxy.called("put_object_tagging")] == [older]
    assert tags_of(s3, UPLOADS, "a.jpg", older)[VERDICT] == "review"
    assert tags_of(s3, UPLOADS, "a.jpg", newer) == newer_tags
    assert s3.head_object(Bucket=UPLOADS, Key="a.jpg")["VersionId"] == newer  # the newer one stays current


def test_unversioned_bucket_older_event_after_newer_one_is_a_no_op(
    s3: Any, forced: Callable[..., Moderator]
) -> None:
    make_buckets(s3, versioned=False)
    mod = forced("review")
    s3.put_object(Bucket=UPLOADS, Key="a.jpg", Body=image_bytes())
    ref = ObjectRef(UPLOADS, "a.jpg")
    moderate_objects([ref], client=s3, moderator=mod)
    proxy = S3Proxy(s3)

    [late] = moderate_objects([ref], client=proxy, moderator=mod)

    assert late.outcome is Outcome.already_judged
    assert not proxy.called("put_object_tagging")


def test_pdf_named_like_a_jpeg_is_tagged_error_not_deleted(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    version = put(s3, "photo.jpg", PDF, ContentType="image/jpeg")
    proxy = S3Proxy(s3)

    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "photo.jpg", version)], client=proxy, moderator=forced("quarantine")
    )

    assert result.ok
    assert result.outcome is Outcome.error
    tags = tags_of(s3, UPLOADS, "photo.jpg", version)
    assert tags[VERDICT] == "error"
    assert "not an image" in tags[REASON]
    assert exists(s3, UPLOADS, "photo.jpg", version)
    assert all("Range" in call for call in proxy.called("get_object"))  # only the first bytes were read
    assert not proxy.called("copy_object")
    assert not proxy.called("delete_object")


def test_oversized_object_is_never_downloaded(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    big = image_bytes(size=(640, 480), quality=100)
    version = put(s3, "big.jpg", big)
    proxy = S3Proxy(s3)

    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "big.jpg", version)],
        client=proxy,
        moderator=forced("quarantine", max_object_bytes=len(big) - 1),
    )

    assert result.ok
    assert result.outcome is Outcome.error
    assert not proxy.called("get_object")
    tags = tags_of(s3, UPLOADS, "big.jpg", version)
    assert tags[VERDICT] == "error"
    assert "over the limit" in tags[REASON]
    assert re.fullmatch(r"[\w\s+\-=.:/@]+", tags[REASON])  # only characters S3 allows in tag values
    assert exists(s3, UPLOADS, "big.jpg", version)


@pytest.mark.parametrize("body", [b"\xff\xd8\xff\xe0" + b"\x00" * 64, b""], ids=["truncated-jpeg", "empty"])
def test_undecodable_or_empty_object_is_tagged_error(
    s3: Any, forced: Callable[..., Moderator], body: bytes
) -> None:
    make_buckets(s3)
    version = put(s3, "broken.jpg", body)

    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "broken.jpg", version)], client=s3, moderator=forced("quarantine")
    )

    assert result.ok
    assert result.outcome is Outcome.error
    assert tags_of(s3, UPLOADS, "broken.jpg", version)[VERDICT] == "error"
    assert exists(s3, UPLOADS, "broken.jpg", version)


def test_object_deleted_before_its_event_is_a_success(
    s3: Any, forced: Callable[..., Moderator], caplog: pytest.LogCaptureFixture
) -> None:
    make_buckets(s3)
    version = put(s3, "gone.jpg", image_bytes())
    s3.delete_object(Bucket=UPLOADS, Key="gone.jpg", VersionId=version)

    with caplog.at_level(logging.INFO, logger="handler"):
        results = moderate_objects(
            [ObjectRef(UPLOADS, "gone.jpg", version), ObjectRef(UPLOADS, "never-existed.jpg")],
            client=s3,
            moderator=forced("quarantine"),
        )

    assert [(r.ok, r.outcome) for r in results] == [(True, Outcome.gone), (True, Outcome.gone)]
    assert "object no longer exists" in caplog.text


def test_objects_in_the_quarantine_location_are_left_alone(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    proxy = S3Proxy(s3)

    [result] = moderate_objects(
        [ObjectRef(QUARANTINE, f"{PREFIX}a.jpg")], client=proxy, moderator=forced("quarantine")
    )

    assert result.outcome is Outcome.ignored
    assert not proxy.calls


def test_each_still_is_judged_in_a_forward_pass_of_its_own(
    s3: Any, forced: Callable[..., Moderator], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_buckets(s3)
    mod = forced("review")
    refs = [
        ObjectRef(UPLOADS, f"{i}.jpg", put(s3, f"{i}.jpg", image_bytes(color=(i * 40, 0, 0))))
        for i in range(3)
    ]
    refs.append(ObjectRef(UPLOADS, "doc.jpg", put(s3, "doc.jpg", PDF)))
    batches: list[int] = []
    embed = mod.embed_pixels
    monkeypatch.setattr(mod, "embed_pixels", lambda pixels: batches.append(len(pixels)) or embed(pixels))

    results = moderate_objects(refs, client=s3, moderator=mod)

    assert batches == [1, 1, 1]  # the PDF never reaches the model
    assert [r.verdict for r in results] == ["review", "review", "review", "error"]


def test_one_json_log_line_per_object(
    s3: Any, forced: Callable[..., Moderator], caplog: pytest.LogCaptureFixture
) -> None:
    import json

    make_buckets(s3)
    version = put(s3, "a.jpg", image_bytes())

    with caplog.at_level(logging.INFO, logger="handler.s3.moderation"):
        moderate_objects([ObjectRef(UPLOADS, "a.jpg", version)], client=s3, moderator=forced("review"))

    [record] = [r for r in caplog.records if r.name == "handler.s3.moderation"]
    line = record.msg  # a dict: Lambda's JSON log format nests it as an object beside the request id
    assert isinstance(line, dict)
    assert json.loads(JsonMessageFormatter().format(record)) == line  # serve/CLI: one JSON line
    assert line["object"] == f"s3://{UPLOADS}/a.jpg?versionId={version}"
    assert line["bucket"] == UPLOADS
    assert line["key"] == "a.jpg"
    assert line["version"] == version
    assert line["verdict"] == "review"
    assert line["top"]
    assert isinstance(line["score"], float)
    assert line["ms"] > 0


def hostile_mate() -> bytes:
    """An upload built to widen a layer's activation range: saturated, high-frequency stripes."""
    stripes = np.zeros((240, 320, 3), dtype=np.uint8)
    stripes[:, ::2] = (255, 0, 255)
    stripes[::2, :, 1] = 255
    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_an_objects_scores_do_not_depend_on_the_other_uploads_in_its_batch(
    s3: Any, baked: Path, tmp_path: Path, precision: str
) -> None:
    """int8 activations are scaled per forward pass: an uploader whose image shares that pass with
    another's would move the other's scores. Each object's judgement depends on its own bytes alone."""
    from handler.core.moderator import build_moderator
    from handler.settings import Settings

    make_buckets(s3)
    policy = [write_policy(tmp_path, "review")]
    mod = build_moderator(Settings(model_dir=baked, inference_precision=precision, moderation_policy=policy))
    photo = image_bytes(color=(90, 140, 200), size=(400, 300))
    alone = ObjectRef(UPLOADS, "alone.jpg", put(s3, "alone.jpg", photo))
    shared = ObjectRef(UPLOADS, "shared.jpg", put(s3, "shared.jpg", photo))
    mates = [ObjectRef(UPLOADS, f"mate{i}.png", put(s3, f"mate{i}.png", hostile_mate())) for i in range(3)]

    [by_itself] = moderate_objects([alone], client=s3, moderator=mod)
    batch = moderate_objects([*mates, shared], client=s3, moderator=mod)

    assert by_itself.record is not None
    assert batch[-1].record is not None
    assert batch[-1].record.scores == by_itself.record.scores
    assert batch[-1].record.judged_by == by_itself.record.judged_by
