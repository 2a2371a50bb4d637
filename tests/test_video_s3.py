"""Video objects in the S3 flow against moto: verdict tags, first flagged second, quarantine, error tags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handler.core.moderator import Moderator
from handler.s3.entry import handle_notification
from handler.s3.events import ObjectRef
from handler.s3.faults import is_transient
from handler.s3.moderation import Outcome, moderate_objects
from handler.s3.tags import FIRST_FLAGGED, POLICY, REASON, SCORE, TOP, VERDICT
from handler.s3.video import InvocationClock, VideoDeferred
from handler.settings import Settings
from tests.event_loader import load_event
from tests.s3_doubles import QUARANTINE, UPLOADS, S3Proxy, exists, make_buckets, quarantined_key, tags_of
from tests.video_media import BLUE, GREEN, RED, animation, make_audio_only, make_video, needs

pytestmark = needs("libx264")


@pytest.fixture
def clip(tmp_path: Path) -> bytes:
    return make_video(tmp_path / "clip.mp4", [(BLUE, 1), (RED, 1), (GREEN, 1)]).read_bytes()


def put(s3: Any, key: str, body: bytes, **extra: Any) -> str:
    return str(s3.put_object(Bucket=UPLOADS, Key=key, Body=body, **extra)["VersionId"])


def test_quarantined_video_end_to_end_from_an_s3_event(
    s3: Any, forced: Callable[..., Moderator], clip: bytes
) -> None:
    make_buckets(s3)
    version = put(s3, "clips/my clip.mp4", clip, ContentType="video/mp4", Tagging="owner=alice")
    event = load_event("s3_put", key="clips/my+clip.mp4", size=len(clip), version_id=version)

    answer = handle_notification(event, client=s3, moderator=forced("quarantine"))

    assert answer["objects"][0]["outcome"] == "quarantined"
    assert not exists(s3, UPLOADS, "clips/my clip.mp4", version)
    where = quarantined_key("clips/my clip.mp4", version)
    moved = s3.get_object(Bucket=QUARANTINE, Key=where)
    assert moved["Body"].read() == clip
    assert moved["ContentType"] == "video/mp4"
    tags = tags_of(s3, QUARANTINE, where)
    assert tags["owner"] == "alice"
    assert tags[VERDICT] == "quarantine"
    assert tags[TOP] == "bad"
    assert tags[FIRST_FLAGGED] == "0.0"
    assert {VERDICT, POLICY, TOP, SCORE, FIRST_FLAGGED} <= set(tags)


def test_review_video_is_tagged_where_it_is_and_judged_once(
    s3: Any, forced: Callable[..., Moderator], clip: bytes
) -> None:
    make_buckets(s3)
    version = put(s3, "a.mp4", clip)
    ref = ObjectRef(UPLOADS, "a.mp4", version)
    mod = forced("review")

    [result] = moderate_objects([ref], client=s3, moderator=mod)
    [again] = moderate_objects([ref], client=s3, moderator=mod)

    assert (result.outcome, result.verdict) == (Outcome.judged, "review")
    assert again.outcome is Outcome.already_judged
    tags = tags_of(s3, UPLOADS, "a.mp4", version)
    assert tags[VERDICT] == "review"
    assert tags[FIRST_FLAGGED] == "0.0"


def test_allow_has_no_first_flagged_tag_and_it_gives_way_to_user_tags(
    s3: Any, forced: Callable[..., Moderator], clip: bytes
) -> None:
    make_buckets(s3)
    allowed = put(s3, "a.mp4", clip)
    own = "&".join(f"user-{i}=v{i}" for i in range(6))
    crowded = put(s3, "b.mp4", clip, Tagging=own)

    moderate_objects([ObjectRef(UPLOADS, "a.mp4", allowed)], client=s3, moderator=forced("allow"))
    moderate_objects([ObjectRef(UPLOADS, "b.mp4", crowded)], client=s3, moderator=forced("review"))

    assert FIRST_FLAGGED not in tags_of(s3, UPLOADS, "a.mp4", allowed)
    tags = tags_of(s3, UPLOADS, "b.mp4", crowded)
    assert len(tags) == 10  # six of the user's, then verdict, policy, top, score: no room for the 11th
    assert tags[VERDICT] == "review"
    assert FIRST_FLAGGED not in tags


def test_animated_gif_object_takes_the_video_path(s3: Any, forced: Callable[..., Moderator]) -> None:
    make_buckets(s3)
    gif = animation("GIF", [(BLUE, 0.5), (RED, 0.2), (GREEN, 0.5)])
    version = put(s3, "a.gif", gif)

    [result] = moderate_objects([ObjectRef(UPLOADS, "a.gif", version)], client=s3, moderator=forced("review"))

    assert result.verdict == "review"
    assert tags_of(s3, UPLOADS, "a.gif", version)[FIRST_FLAGGED] == "0.0"  # only videos carry it


@pytest.mark.parametrize(
    ("case", "settings", "reason"),
    [
        ("corrupt", {}, "corrupt"),
        ("audio", {}, "no video stream"),
        ("clip", {"video_max_duration_s": 2.0}, "VIDEO_MAX_DURATION_S"),
        ("clip", {"video_time_limit_s": 1e-6}, "too long to judge in one invocation"),
    ],
)
def test_bad_or_too_long_videos_are_tagged_error_never_half_judged(
    s3: Any,
    forced: Callable[..., Moderator],
    clip: bytes,
    tmp_path: Path,
    case: str,
    settings: dict[str, Any],
    reason: str,
) -> None:
    make_buckets(s3)
    bodies = {
        "clip": clip,
        "corrupt": clip[:40] + bytes(range(256)) * 8,
        "audio": make_audio_only(tmp_path / "a.m4a").read_bytes(),
    }
    version = put(s3, "v.mp4", bodies[case])

    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "v.mp4", version)], client=s3, moderator=forced("quarantine", **settings)
    )

    assert result.outcome is Outcome.error
    tags = tags_of(s3, UPLOADS, "v.mp4", version)
    assert tags[VERDICT] == "error"
    assert reason in tags[REASON]
    assert exists(s3, UPLOADS, "v.mp4", version)  # never deleted


def test_video_over_its_byte_limit_is_never_downloaded(
    s3: Any, forced: Callable[..., Moderator], clip: bytes
) -> None:
    make_buckets(s3)
    version = put(s3, "v.mp4", clip)
    proxy = S3Proxy(s3)

    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "v.mp4", version)],
        client=proxy,
        moderator=forced("quarantine", max_video_bytes=len(clip) - 1, max_image_bytes=len(clip) + 1),
    )

    assert result.outcome is Outcome.error
    assert "MAX_VIDEO_BYTES" in tags_of(s3, UPLOADS, "v.mp4", version)[REASON]
    assert all("Range" in call for call in proxy.called("get_object"))


def test_a_video_that_would_start_too_late_is_deferred_for_a_retry(
    s3: Any, forced: Callable[..., Moderator], clip: bytes
) -> None:
    make_buckets(s3)
    refs = [ObjectRef(UPLOADS, key, put(s3, key, clip)) for key in ("1.mp4", "2.mp4")]
    mod = forced("review", function_timeout_s=30, video_time_limit_s=30)  # one video uses it all

    first, second = moderate_objects(refs, client=s3, moderator=mod)

    assert first.verdict == "review"
    assert second.outcome is Outcome.deferred
    assert isinstance(second.error, VideoDeferred)
    assert is_transient(second.error)  # SQS delivers it again; Batch Operations retries
    assert VERDICT not in tags_of(s3, UPLOADS, "2.mp4", refs[1].version_id)
    [retried] = moderate_objects([refs[1]], client=s3, moderator=mod)
    assert retried.verdict == "review"


def test_invocation_clock_gives_a_later_video_its_full_time_or_none() -> None:
    clock = InvocationClock(Settings(function_timeout_s=30))  # 20 s a video, 10 s reserve
    clock.start_video()
    clock.start_video()  # 0 s spent: 20 s fit before 30 - 5
    clock.started -= 6
    with pytest.raises(VideoDeferred, match=r"6\.0 s of this 30 s invocation"):
        clock.start_video()
