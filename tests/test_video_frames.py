"""Frame sampling from real files made in the test: H.264/MP4, VP9/WebM, animated GIF/WebP; bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from handler.exceptions import InputError
from handler.video.formats import media_kind
from handler.video.frames import VideoFile
from handler.video.judge import open_source
from handler.video.multiframe import MultiFrameImage
from handler.video.sampling import SamplingLimits, VideoTooLong, plan
from tests.video_media import BLUE, GREEN, RED, animation, make_audio_only, make_video, needs

FIVE_SECONDS = [(BLUE, 2.0), (RED, 1.0), (BLUE, 2.0)]


def times(source: VideoFile | MultiFrameImage) -> list[float]:
    return [round(frame.time_s, 3) for frame in source.frames()]


def assert_one_per_interval(chosen: list[float], interval: float, duration: float) -> None:
    for k in range(round(duration / interval)):
        assert any(k * interval - 0.01 <= t < (k + 1) * interval + 0.01 for t in chosen), (k, chosen)


@needs("libx264")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_h264_mp4_one_frame_in_every_second_and_the_frame_shown_then(tmp_path: Path, seed: int) -> None:
    path = make_video(tmp_path / "a.mp4", FIVE_SECONDS)
    video = VideoFile(path, "mp4", SamplingLimits(), seed)
    assert video.duration_s == pytest.approx(5.0)
    frames = list(video.frames())
    assert_one_per_interval([f.time_s for f in frames], 1.0, 5.0)
    for frame in frames:
        red = frame.image.getpixel((10, 10))[0] > 200
        assert red == (2.0 - 0.01 <= frame.time_s < 3.0), frame.time_s
    assert frames[0].image.size == (224, 224)  # scaled while converting, cut to the model's region


@needs("libvpx-vp9")
def test_vp9_webm_samples_the_same_way(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.webm", FIVE_SECONDS, codec="libvpx-vp9")
    assert media_kind(path.read_bytes()[:512]) == "webm"
    video = VideoFile(path, "webm", SamplingLimits(), 5)
    assert video.duration_s == pytest.approx(5.0)
    assert_one_per_interval(times(video), 1.0, 5.0)


@needs("libx264")
def test_rate_and_cap_are_settings(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", [(BLUE, 5.0)])  # no cuts: regular samples only
    assert_one_per_interval(times(VideoFile(path, "mp4", SamplingLimits(sample_fps=2.0))), 0.5, 5.0)
    capped = times(VideoFile(path, "mp4", SamplingLimits(max_frames=3)))
    assert len(capped) == 3
    assert_one_per_interval(capped, 5 / 3, 5.0)


@needs("libx264")
@pytest.mark.parametrize("seed", range(6))
def test_a_keyframe_stands_in_only_near_the_jittered_instant(tmp_path: Path, seed: int) -> None:
    path = make_video(tmp_path / "k.mp4", [(BLUE, 5.0)], keyint=7)  # keyframes every 0.7 s
    video = VideoFile(path, "mp4", SamplingLimits(), seed)
    assert video.index.keyframes == pytest.approx([0.0, 0.7, 1.4, 2.1, 2.8, 3.5, 4.2, 4.9])
    targets = plan(5.0, 1.0, 120, seed)
    for target, taken in zip(targets, times(video), strict=True):
        snapped = any(abs(taken - k) < 1e-3 for k in video.index.keyframes)
        near = abs(taken - target.time_s) <= target.window_s + 1e-3
        exact = target.time_s - 0.1 - 1e-3 <= taken <= target.time_s + 1e-3  # the frame shown then (10 fps)
        assert (snapped and near) or exact, (target, taken)


@needs("libx264")
@pytest.mark.parametrize("seed", range(10))
def test_benign_keyframes_around_flagged_frames_do_not_hide_them(tmp_path: Path, seed: int) -> None:
    """The keyframe-gamed clip: a blue keyframe at every whole second, red frames everywhere else."""
    path = make_video(tmp_path / "g.mp4", [(BLUE, 0.1), (RED, 0.9)] * 5, keyint=10)
    video = VideoFile(path, "mp4", SamplingLimits(), seed)
    assert video.index.keyframes == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    reds = [f for f in video.frames() if f.image.getpixel((10, 10))[0] > 200]
    assert len(reds) >= 2, "most samples land on the flagged frames"


@needs("libx264")
@pytest.mark.parametrize("seed", range(5))
def test_a_one_frame_flash_between_samples_is_found_as_a_scene_cut(tmp_path: Path, seed: int) -> None:
    path = make_video(tmp_path / "f.mp4", [(BLUE, 2.3), (RED, 0.1), (BLUE, 2.6)])
    video = VideoFile(path, "mp4", SamplingLimits(), seed)
    assert 2.3 in [round(c, 3) for c in video.index.cuts]
    frames = {round(f.time_s, 3): f.image.getpixel((10, 10))[0] > 200 for f in video.frames()}
    assert frames[2.3], frames


@needs("libx264")
def test_content_in_non_reference_b_frames_is_decoded(tmp_path: Path) -> None:
    clip = [(BLUE, 0.1), (RED, 0.3)] * 12  # with a fixed IBBBP pattern, every B-frame is red
    path = make_video(tmp_path / "b.mp4", clip, bframes=3, extra_params="b-adapt=0:b-pyramid=none")
    reds = [
        f for f in VideoFile(path, "mp4", SamplingLimits(), 0).frames() if f.image.getpixel((9, 9))[0] > 200
    ]
    assert reds


@needs("libx264")
def test_display_rotation_is_applied(tmp_path: Path) -> None:
    path = make_video(tmp_path / "phone.mp4", [(BLUE, 1.0)], left=RED, rotation=90)
    frame = next(iter(VideoFile(path, "mp4", SamplingLimits()).frames()))
    width, height = frame.image.size
    assert (width, height) == (224, 224)  # the model's region of the portrait picture
    assert frame.image.getpixel((width // 2, height - 5))[0] > 200  # the left half turned to the bottom
    assert frame.image.getpixel((width // 2, 5))[2] > 200


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_every_frame_is_judged_with_its_start_time(fmt: str) -> None:
    data = animation(fmt, [(BLUE, 1.5), (RED, 0.3), (GREEN, 2.0)])  # the red flash falls between seconds
    assert media_kind(data[:512]) == fmt.lower()
    animated = open_source(data, fmt.lower(), SamplingLimits())
    assert animated.duration_s == pytest.approx(3.8)
    frames = list(animated.frames())
    assert [f.time_s for f in frames] == pytest.approx([0.0, 1.5, 1.8])
    assert [f.image.getpixel((5, 5))[:2] for f in frames][1][0] > 200


@pytest.mark.parametrize("seed", [0, 1, 2, 12345])
def test_animation_longer_than_the_cap_has_one_jittered_frame_per_interval(seed: int) -> None:
    data = animation("GIF", [((i * 20, 0, 0), 0.1) for i in range(12)])
    animated = MultiFrameImage(data, SamplingLimits(max_frames=4), seed)
    chosen = times(animated)
    assert len(chosen) == 4
    assert all(0.3 * k - 1e-6 <= t < 0.3 * (k + 1) for k, t in enumerate(chosen)), chosen


@needs("libx264")
def test_too_long_or_too_many_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", FIVE_SECONDS)
    with pytest.raises(VideoTooLong, match=r"5\.0 s long; the limit is 4 s"):
        VideoFile(path, "mp4", SamplingLimits(max_duration_s=4))
    with pytest.raises(InputError, match="MAX_IMAGE_PIXELS") as too_big:
        VideoFile(path, "mp4", SamplingLimits(max_pixels=64 * 48 - 1))
    assert too_big.value.status_code == 413


@needs("libx264")
def test_corrupt_truncated_audio_only_and_empty_files_are_input_errors(tmp_path: Path) -> None:
    good = make_video(tmp_path / "a.mp4", FIVE_SECONDS).read_bytes()
    fast = make_video(tmp_path / "f.mp4", FIVE_SECONDS, container_options={"movflags": "faststart"})
    cases = {
        "corrupt": good[:40] + bytes(range(256)) * 8,
        "truncated": good[: len(good) // 2],  # index at the end: gone
        "truncated-faststart": fast.read_bytes()[: len(fast.read_bytes()) // 2],  # index kept, data gone
        "empty": b"",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(data)
        with pytest.raises(InputError, match=r"corrupt|truncated|could not be read") as bad:
            VideoFile(path, "mp4", SamplingLimits())
        assert bad.value.status_code == 400, name
    with pytest.raises(InputError, match="no video stream") as audio:
        VideoFile(make_audio_only(tmp_path / "a.m4a"), "mp4", SamplingLimits())
    assert audio.value.status_code == 415


def test_broken_animation_is_an_input_error() -> None:
    data = animation("GIF", [(BLUE, 0.5), (RED, 0.5)])
    with pytest.raises(InputError):
        list(MultiFrameImage(data[: len(data) - 30], SamplingLimits()).frames())
