"""Frame sampling from real files made in the test: H.264/MP4, VP9/WebM, animated GIF/WebP; bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from handler.exceptions import InputError
from handler.video.frames import VideoFile
from handler.video.judge import media_kind, open_source
from handler.video.multiframe import MultiFrameImage
from handler.video.sampling import SamplingLimits, VideoTooLong
from tests.video_media import BLUE, GREEN, RED, animation, make_audio_only, make_video, needs

FIVE_SECONDS = [(BLUE, 2.0), (RED, 1.0), (BLUE, 2.0)]


def times(source: VideoFile | MultiFrameImage) -> list[float]:
    return [round(frame.time_s, 3) for frame in source.frames()]


@needs("libx264")
def test_h264_mp4_one_frame_per_second_from_the_first(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", FIVE_SECONDS)
    video = VideoFile(path, "mp4", SamplingLimits())
    assert video.duration_s == pytest.approx(5.0)
    frames = list(video.frames())
    assert [f.time_s for f in frames] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert [f.image.getpixel((10, 10))[0] > 200 for f in frames] == [False, False, True, False, False]
    assert frames[0].image.size == (224, 224)  # scaled while converting, cut to the model's region


@needs("libvpx-vp9")
def test_vp9_webm_samples_the_same_instants(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.webm", FIVE_SECONDS, codec="libvpx-vp9")
    assert media_kind(path.read_bytes()[:512]) == "webm"
    video = VideoFile(path, "webm", SamplingLimits())
    assert video.duration_s == pytest.approx(5.0)
    assert times(video) == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])


@needs("libx264")
def test_rate_and_cap_are_settings(tmp_path: Path) -> None:
    path = make_video(tmp_path / "a.mp4", FIVE_SECONDS)
    assert times(VideoFile(path, "mp4", SamplingLimits(sample_fps=2.0))) == pytest.approx(
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    )
    # three frames for five seconds: one every 5/3 s, each the nearest frame to its instant
    assert times(VideoFile(path, "mp4", SamplingLimits(max_frames=3))) == pytest.approx([0.0, 1.7, 3.3])


@needs("libx264")
def test_keyframes_near_the_instants_are_used_and_nothing_else_decoded(tmp_path: Path) -> None:
    path = make_video(tmp_path / "k.mp4", [(BLUE, 5.0)], keyint=7)  # keyframes every 0.7 s
    video = VideoFile(path, "mp4", SamplingLimits())
    assert video.index.keyframes == pytest.approx([0.0, 0.7, 1.4, 2.1, 2.8, 3.5, 4.2, 4.9])
    assert times(video) == pytest.approx([0.0, 0.7, 2.1, 2.8, 4.2])  # each within half a second
    assert video.decoded == 5  # one decoded frame per sample: seek, decode the keyframe, done


@needs("libx264")
def test_b_frames_are_skipped_not_decoded(tmp_path: Path) -> None:
    path = make_video(tmp_path / "b.mp4", [(BLUE, 5.0)], bframes=3)
    video = VideoFile(path, "mp4", SamplingLimits())
    assert times(video) == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0], abs=0.11)
    assert video.decoded < 50 * 0.6  # of 50 frames, non-reference ones were never decoded


@needs("libx264")
def test_display_rotation_is_applied(tmp_path: Path) -> None:
    path = make_video(tmp_path / "phone.mp4", [(BLUE, 1.0)], left=RED, rotation=90)
    [frame] = VideoFile(path, "mp4", SamplingLimits()).frames()
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
