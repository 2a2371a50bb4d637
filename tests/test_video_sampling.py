"""Which instants get judged, keyframe choice and seeking, and format sniffing (pure functions)."""

from __future__ import annotations

import time

import pytest

from handler.video.formats import sniff_video_format
from handler.video.sampling import (
    SNAP_FRACTION,
    SamplingLimits,
    Target,
    VideoTooLong,
    choose_time,
    covered,
    fitted_size,
    plan,
    sample_interval,
    sampling_seed,
    seek_point,
)


@pytest.mark.parametrize(
    ("duration", "fps", "cap", "count"),
    [(5.0, 1.0, 120, 5), (4.5, 1.0, 120, 5), (3.0, 2.0, 120, 6), (0.04, 1.0, 120, 1), (10.0, 1.0, 5, 4)],
)
@pytest.mark.parametrize("seed", [0, 7, 2**63 - 1])
def test_the_first_frame_and_one_jittered_instant_in_each_interval(
    duration: float, fps: float, cap: int, count: int, seed: int
) -> None:
    interval = sample_interval(duration, fps, cap)
    first, *targets = plan(duration, fps, cap, seed)
    assert first == Target(0.0, 0.0), "the first frame (the thumbnail), always, exactly"
    assert len(targets) == count
    intervals = [int(target.time_s // interval) for target in targets]
    assert intervals == sorted(set(intervals)), "one in each interval"
    assert all(target.time_s < duration for target in targets)
    assert all(target.window_s == pytest.approx(interval * SNAP_FRACTION) for target in targets)


def test_the_seed_decides_the_instants_and_the_same_seed_gives_the_same_ones() -> None:
    assert plan(60.0, 1.0, 120, 1) == plan(60.0, 1.0, 120, 1)
    assert plan(60.0, 1.0, 120, 1) != plan(60.0, 1.0, 120, 2)
    key = b"secret"
    assert sampling_seed(b"digest", key) == sampling_seed(b"digest", key)
    assert sampling_seed(b"digest", key) != sampling_seed(b"other", key)
    assert sampling_seed(b"digest", key) != sampling_seed(b"digest", b"another key")


def test_a_long_clip_is_spread_over_its_whole_length_never_cut() -> None:
    targets = plan(600.0, 1.0, 120, 3)
    assert len(targets) == 120, "the frame cap counts the first frame"
    assert sample_interval(600.0, 1.0, 120) == 5.0
    assert targets[0].time_s == 0.0
    assert 5.0 <= targets[1].time_s < 10.0, "the first interval has the first frame instead"
    assert targets[-1].time_s >= 595.0


def test_scene_cuts_add_exact_samples_within_the_cap() -> None:
    regular = plan(5.0, 1.0, 120, 0)
    with_cuts = plan(5.0, 1.0, 120, 0, cuts=[2.3, 4.4, 0.5, 1.5, 3.5, 2.6, 0.2])
    extra = [t for t in with_cuts if t not in regular]
    assert [t.window_s for t in extra] == [0.0] * 5, "no more cuts than intervals"
    assert {t.time_s for t in extra} == {2.3, 4.4, 0.5, 1.5, 3.5}, "the strongest first"
    assert with_cuts == sorted(with_cuts)
    assert len(plan(5.0, 1.0, 7, 0, cuts=[2.3, 4.4])) == 7, "the frame cap holds"


KEYFRAMES = (0.0, 0.7, 1.4, 2.1, 2.8, 3.5)


@pytest.mark.parametrize(
    ("target", "after", "expected"),
    [
        (0.0, None, 0.0),
        (1.0, 0.0, 0.7),  # 0.7 and 1.4 are both within 0.5; the nearer wins
        (2.0, 0.7, 2.1),
        (3.0, 2.1, 2.8),  # 3.5 is the window's end, which belongs to the next sample
        (1.0, 0.7, 1.4),  # 0.7 was taken already
        (5.0, 3.5, 5.0),  # no keyframe near: the exact instant
    ],
)
def test_choose_time_prefers_a_nearby_keyframe(target: float, after: float | None, expected: float) -> None:
    assert choose_time(target, 0.5, KEYFRAMES, after) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("wanted", "last_decoded", "expected"),
    [
        (0.0, None, None),  # at the start already
        (0.5, None, None),  # the first keyframe is where decoding starts anyway
        (1.6, None, 1.4),  # a keyframe ahead: jump to it
        (1.6, 1.0, 1.4),
        (1.6, 1.5, None),  # already past the keyframe: keep decoding forward
        (2.1, 1.5, 2.1),  # the sample is a keyframe: decode only it
    ],
)
def test_seek_only_when_a_keyframe_lies_ahead(
    wanted: float, last_decoded: float | None, expected: float | None
) -> None:
    assert seek_point(wanted, KEYFRAMES, last_decoded) == (
        None if expected is None else pytest.approx(expected)
    )


def test_a_frame_serves_every_target_whose_window_it_reaches() -> None:
    targets = [Target(t, 0.5) for t in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert covered(targets, 0, 0.0) == 1
    assert covered(targets, 1, 3.0) == 4  # a still frame from 3.0 on: targets 2 and 3 are its too
    assert covered([Target(1.0), Target(1.2)], 0, 1.1) == 1, "an exact target is served only by its frame"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1280, 720), (398, 224)),
        ((720, 1280), (224, 398)),
        ((100, 100), (224, 224)),
        ((224, 300), (224, 300)),
    ],
)
def test_fitted_size_matches_the_model_preprocessing(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fitted_size(*size, 224) == expected


def test_limits_say_which_setting_to_change() -> None:
    limits = SamplingLimits(max_duration_s=60, max_pixels=100, deadline=time.monotonic() - 1, time_limit_s=20)
    with pytest.raises(VideoTooLong, match="VIDEO_MAX_DURATION_S") as too_long:
        limits.check_duration(61)
    assert too_long.value.status_code == 413
    limits.check_duration(60)
    with pytest.raises(Exception, match="MAX_IMAGE_PIXELS"):
        limits.check_pixels(20, 10)
    with pytest.raises(VideoTooLong, match="too long to judge in one invocation"):
        limits.check_time(12.0, 30.0)
    SamplingLimits().check_time(1.0, 2.0)  # no deadline: never


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2", "mp4"),
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00", "mp4"),  # audio-only: opening it tells
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mov"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", None),  # still images in ISO BMFF
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00", None),
        (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm", "webm"),
        (b"\x1a\x45\xdf\xa3\xa3B\x86\x81\x01B\x82\x88matroska", "matroska"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "avi"),
        (b"RIFF\x00\x10\x00\x00WEBPVP8 ", None),
        ((b"\x47" + b"\x00" * 187) * 3, "mpegts"),
        (b"GIF89a" + b"\x00" * 400, None),
        (b"Good morning, this is text" * 20, None),  # starts with 0x47 but is no transport stream
        (b"", None),
    ],
)
def test_sniff_video_format(head: bytes, expected: str | None) -> None:
    assert sniff_video_format(head) == expected
