"""A hostile uploader's files through the HTTP API: every one a 4xx or the right verdict, never a 5xx."""

from __future__ import annotations

import io
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from handler.core.moderator import Moderator
from handler.core.policy import Action
from handler.core.preprocess import PreprocessConfig, model_image
from handler.exceptions import PayloadTooLarge
from handler.media.judge import MediaLimits, judge
from handler.media.values import Video, file_media
from handler.s3.events import ObjectRef
from handler.s3.moderation import moderate_objects
from handler.s3.tags import VERDICT
from handler.settings import Settings
from handler.video.frames import VideoFile
from handler.video.sampling import SamplingLimits, VideoTooLong
from tests.s3_doubles import UPLOADS, make_buckets, tags_of
from tests.video_media import BLUE, RED, ColourScorer, colour_policy, make_video, needs

ROUTES = ("/v1/moderate", "/classify/", "/v1/moderate/batch")


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 30, 255)[: len(mode)]).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def dds_with_unknown_pixel_format() -> bytes:
    """A DDS header Pillow recognises, with a FourCC it has no decoder for (it raises NotImplementedError)."""
    header = struct.pack("<7I", 124, 0x1007, 8, 8, 0, 0, 0) + b"\0" * 44
    header += struct.pack("<2I4s5I", 32, 0x4, b"ZZZZ", 0, 0, 0, 0, 0) + struct.pack("<5I", 0x1000, 0, 0, 0, 0)
    return b"DDS " + header + b"\0" * 256


def post(client: TestClient, route: str, data: bytes, name: str = "x.png") -> tuple[int, dict[str, object]]:
    field = "images" if route.endswith("batch") else "image"
    response = client.post(route, files={field: (name, data, "application/octet-stream")})
    return response.status_code, response.json()


@pytest.mark.parametrize("size", [(20000, 1), (1, 20000)], ids=["20000x1", "1x20000"])
@pytest.mark.parametrize("route", ROUTES)
def test_extreme_aspect_ratios_are_judged(client: TestClient, route: str, size: tuple[int, int]) -> None:
    data = png(size)
    assert len(data) < 1000, "a few hundred bytes"
    status, body = post(client, route, data)
    assert status == 200, body
    if route.endswith("batch"):
        assert body["results"][0]["result"]["verdict"] in ("allow", "review", "quarantine")  # type: ignore[index]


@pytest.mark.parametrize("route", ROUTES)
def test_a_recognised_format_pillow_cannot_decode_is_a_4xx_naming_it(client: TestClient, route: str) -> None:
    status, body = post(client, route, dds_with_unknown_pixel_format(), "x.dds")
    if route.endswith("batch"):
        assert status == 200
        error = body["results"][0]["error"]  # type: ignore[index]
        status, detail = error["status"], error["detail"]
    else:
        detail = body["detail"]
    assert status == 400
    assert "dds image could not be decoded" in str(detail)


@pytest.fixture
def split(
    tmp_path: Path, make_moderator: Callable[..., Moderator], override_moderator: Callable[[Moderator], None]
) -> tuple[Image.Image, Image.Image, Moderator]:
    """Serve a policy that quarantines one picture and allows another (a threshold between their scores).

    Returns (benign, flagged, the moderator serving that policy). The model has random weights, so the
    pair is found by scoring candidates.
    """
    candidates = [Image.new("RGB", (48, 40), colour) for colour in COLOURS]
    probe = make_moderator(moderation_policy=[write_threshold_policy(tmp_path, 1.0)])
    regions = [model_image(c, probe.encoder.preprocess) for c in candidates]
    scores = [d.scores["bad"] for d in probe.moderate(regions, probe.policies.default)]
    low, high = scores.index(min(scores)), scores.index(max(scores))
    assert scores[high] - scores[low] > 1e-4, scores
    mod = make_moderator(
        moderation_policy=[write_threshold_policy(tmp_path, (scores[low] + scores[high]) / 2)]
    )
    override_moderator(mod)
    return candidates[low], candidates[high], mod


COLOURS = [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def write_threshold_policy(tmp_path: Path, threshold: float) -> Path:
    path = tmp_path / f"split-{threshold}.json"
    categories = [
        {"name": "bad", "prompts": ["a bad thing"], "threshold": threshold, "action": "quarantine"},
        {"name": "fine", "prompts": ["a fine thing"], "safe": True},
    ]
    path.write_text(json.dumps({"name": "split", "categories": categories}))
    return path


def multi_frame(fmt: str, frames: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=500)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "GIF", "WEBP"])
def test_a_flagged_later_frame_decides_the_verdict(
    client: TestClient, split: tuple[Image.Image, Image.Image, Moderator], fmt: str
) -> None:
    benign, flagged, _ = split
    still = multi_frame(fmt, [benign])
    status, body = post(client, "/v1/moderate", still)
    assert (status, body["verdict"], body["frames"]) == (200, "allow", 1)
    data = multi_frame(fmt, [benign, flagged])
    status, body = post(client, "/v1/moderate", data)
    assert (status, body["verdict"], body["frames"]) == (200, "quarantine", 2), body
    status, body = post(client, "/v1/moderate/batch", data)
    [item] = body["results"]  # type: ignore[misc]
    assert (item["result"]["verdict"], item["result"]["frames"]) == ("quarantine", 2)


def test_a_page_over_the_pixel_limit_is_refused_even_after_a_small_first_page(
    client: TestClient,
    make_moderator: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
) -> None:
    override_moderator(make_moderator(max_image_pixels=10_000))
    data = multi_frame("TIFF", [Image.new("RGB", (50, 50)), Image.new("RGB", (400, 400))])
    status, body = post(client, "/v1/moderate", data)
    assert status == 413
    assert "frame 1" in str(body["detail"])


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_the_s3_flow_judges_every_frame_too(
    s3: Any, split: tuple[Image.Image, Image.Image, Moderator], fmt: str
) -> None:
    benign, flagged, mod = split
    make_buckets(s3)
    key = f"a.{fmt.lower()}"
    version = s3.put_object(Bucket=UPLOADS, Key=key, Body=multi_frame(fmt, [benign, flagged]))["VersionId"]
    [result] = moderate_objects([ObjectRef(UPLOADS, key, version)], client=s3, moderator=mod)
    assert result.ok
    assert tags_of(s3, UPLOADS, key, version)[VERDICT] == "quarantine", "the flagged second frame decides"


def gamed_clip(path: Path) -> Path:
    """A benign (blue) keyframe at every whole second, flagged (red) frames everywhere else."""
    return make_video(path, [(BLUE, 0.1), (RED, 0.9)] * 5, keyint=10)


@needs("libx264")
@pytest.mark.parametrize("key", ["one", "two", "three", "four"])
def test_a_keyframe_gamed_clip_is_judged_on_its_flagged_frames(tmp_path: Path, key: str) -> None:
    settings = Settings(video_sampling_key=key, video_early_exit=False)
    limits = MediaLimits.from_settings(settings, PreprocessConfig())
    media = file_media(gamed_clip(tmp_path / "g.mp4"), limits.image, limits.preprocess)
    assert isinstance(media, Video)
    verdict = judge(media, ColourScorer(), colour_policy(), limits)
    assert verdict.verdict is Action.quarantine
    assert verdict.kind == "video"
    assert verdict.timeline is not None
    reds = [f for f in verdict.timeline.frames if "bad" in f.flagged]
    assert len(reds) >= len(verdict.timeline.frames) // 2, "most samples land on the flagged frames"
    again = judge(media, ColourScorer(), colour_policy(), limits)
    assert [f.time_s for f in again.timeline.frames] == [f.time_s for f in verdict.timeline.frames]  # type: ignore[union-attr]


@needs("libx264")
def test_hostile_clips_over_http_are_a_verdict_or_a_4xx(client: TestClient, tmp_path: Path) -> None:
    gamed = gamed_clip(tmp_path / "g.mp4").read_bytes()
    response = client.post("/v1/moderate/video", files={"video": ("g.mp4", gamed, "video/mp4")})
    assert response.status_code == 200, response.text
    small = make_video(tmp_path / "a.ts", [(BLUE, 2.0)], size=(64, 48)).read_bytes()
    large = make_video(
        tmp_path / "b.ts", [(RED, 2.0)], size=(320, 240), container_options={"output_ts_offset": "2"}
    ).read_bytes()
    cases = {"garbage.mp4": gamed[:64] + bytes(range(256)) * 4, "half.ts": (small + large)[:5000]}
    for name, data in cases.items():
        response = client.post("/v1/moderate/video", files={"video": (name, data, "video/mp4")})
        assert response.status_code < 500, (name, response.text)
        assert response.status_code == 200 or response.json()["detail"]


@needs("libx264")
def test_a_resolution_change_midstream_is_checked_against_the_pixel_limit(tmp_path: Path) -> None:
    small = make_video(tmp_path / "a.ts", [(BLUE, 2.0)], size=(64, 48))
    large = make_video(
        tmp_path / "b.ts", [(RED, 2.0)], size=(320, 240), container_options={"output_ts_offset": "2"}
    )
    joined = tmp_path / "joined.ts"
    joined.write_bytes(small.read_bytes() + large.read_bytes())
    video = VideoFile(joined, "mpegts", SamplingLimits(max_pixels=64 * 48))  # the header says 64x48
    with pytest.raises(PayloadTooLarge, match="320x240"):
        list(video.frames())


@needs("libx264")
def test_indexing_stops_when_the_time_limit_runs_out(tmp_path: Path) -> None:
    path = make_video(tmp_path / "long.mp4", [(BLUE, 60)])  # 600 packets
    with pytest.raises(VideoTooLong, match="time limit"):
        VideoFile(path, "mp4", SamplingLimits(deadline=time.monotonic() - 1, time_limit_s=1))
