"""Which instants get judged, keyframe choice and seeking, and format sniffing (pure functions)."""

from __future__ import annotations

import time

import pytest

from handler.video.formats import sniff_video_format
from handler.video.sampling import (
    SamplingLimits,
    VideoTooLong,
    choose_time,
    covered,
    fitted_size,
    sample_interval,
    sample_times,
    seek_point,
)


@pytest.mark.parametrize(
    ("duration", "fps", "cap", "expected"),
    [
        (5.0, 1.0, 120, [0.0, 1.0, 2.0, 3.0, 4.0]),
        (4.5, 1.0, 120, [0.0, 1.0, 2.0, 3.0, 4.0]),
        (3.0, 2.0, 120, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
        (0.0, 1.0, 120, [0.0]),  # a one-frame clip: its first frame, always
        (0.04, 1.0, 120, [0.0]),
        (10.0, 1.0, 4, [0.0, 2.5, 5.0, 7.5]),  # too long for the cap: sparser, still spanning it all
    ],
)
def test_sample_times(duration: float, fps: float, cap: int, expected: list[float]) -> None:
    assert sample_times(duration, fps, cap) == pytest.approx(expected)


def test_a_long_clip_is_spread_over_its_whole_length_never_cut() -> None:
    times = sample_times(600.0, 1.0, 120)
    assert len(times) == 120
    assert sample_interval(600.0, 1.0, 120) == 5.0
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(595.0)


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
    targets = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert covered(targets, 0, 0.0, 0.5) == 1
    assert covered(targets, 1, 3.0, 0.5) == 4  # a still frame from 3.0 on: targets 2 and 3 are its too


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
