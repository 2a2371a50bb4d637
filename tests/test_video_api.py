"""POST /v1/moderate/video through the real app and the tiny model: sources, response, 4xx."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from handler.core.moderator import Moderator
from tests.conftest import image_bytes
from tests.s3_doubles import write_policy
from tests.video_media import BLUE, GREEN, RED, animation, make_audio_only, make_video, needs

RESPONSE_KEYS = {
    "verdict",
    "segments",
    "frames_scored",
    "frames",
    "duration_s",
    "elapsed_ms",
    "early_exit",
    "policy",
    "model",
}
URL = "/v1/moderate/video"

pytestmark = needs("libx264")

Use = Callable[..., Moderator]


@pytest.fixture
def use(tmp_path: Path, make_moderator: Callable[..., Moderator], override_moderator: Any) -> Use:
    """Serve with a moderator whose policy forces `verdict` (or the default policy), early exit off."""

    def build(verdict: str | None = None, **settings: Any) -> Moderator:
        policies = [write_policy(tmp_path, verdict)] if verdict else []
        mod = make_moderator(moderation_policy=policies, **{"video_early_exit": False, **settings})
        override_moderator(mod)
        return mod

    return build


@pytest.fixture
def clip(tmp_path: Path) -> bytes:
    return make_video(tmp_path / "clip.mp4", [(BLUE, 1), (RED, 1), (GREEN, 1)]).read_bytes()


def test_upload_is_judged_frame_by_frame(client: TestClient, use: Use, clip: bytes) -> None:
    use()
    response = client.post(URL, files={"video": ("clip.mp4", clip, "video/mp4")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESPONSE_KEYS
    assert body["frames_scored"] == 3
    assert body["duration_s"] == pytest.approx(3.0)
    assert body["policy"] == "default"
    assert body["model"] == "random-clip-tiny"
    severity = ["allow", "review", "quarantine"]
    worst = max((s["action"] for s in body["segments"]), key=severity.index, default="allow")
    assert body["verdict"] == worst, "the most severe action among the segments"
    assert body["early_exit"] is False


def test_base64_json_with_a_forced_verdict_has_one_segment_over_the_clip(
    client: TestClient, use: Use, clip: bytes
) -> None:
    use("review")
    response = client.post(
        URL, json={"video_base64": base64.b64encode(clip).decode(), "policy": "forced-review"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "review"
    [segment] = body["segments"]
    assert set(segment) == {"start_s", "end_s", "category", "peak_score", "action"}
    assert (segment["start_s"], segment["end_s"], segment["category"], segment["action"]) == (
        0.0,
        3.0,
        "bad",
        "review",
    )
    assert [frame["time_s"] for frame in body["frames"]] == [0.0, 1.0, 2.0]
    for frame in body["frames"]:
        assert set(frame["scores"]) == {"bad", "meh", "fine"}
        assert sum(frame["scores"].values()) == pytest.approx(1.0, abs=1e-3)
        assert frame["flagged"] == ["bad"]  # threshold 0.0 flags `bad` on every frame, nothing else


def test_early_exit_is_reported(client: TestClient, use: Use, clip: bytes) -> None:
    use("quarantine", video_early_exit=True, video_early_exit_margin=0.0, video_batch_size=1)
    body = client.post(URL, files={"video": ("clip.mp4", clip, "video/mp4")}).json()
    assert body["verdict"] == "quarantine"
    assert body["early_exit"] is True
    assert body["frames_scored"] == 1


def test_animated_gif_goes_through_the_same_path(client: TestClient, use: Use) -> None:
    use("quarantine")
    gif = animation("GIF", [(BLUE, 0.5), (RED, 0.2), (GREEN, 0.5)])
    body = client.post(URL, files={"video": ("a.gif", gif, "image/gif")}).json()
    assert body["frames_scored"] == 3  # every frame, not only the first
    assert body["duration_s"] == pytest.approx(1.2)


def test_s3_reference(client: TestClient, use: Use, s3: Any, clip: bytes) -> None:
    use(api_s3_buckets=["videos"])
    s3.create_bucket(Bucket="videos")
    s3.put_object(Bucket="videos", Key="in/clip.mp4", Body=clip)
    response = client.post(URL, json={"s3": {"bucket": "videos", "key": "in/clip.mp4"}})
    assert response.status_code == 200, response.text
    assert response.json()["frames_scored"] == 3
    missing = client.post(URL, json={"s3": {"bucket": "videos", "key": "nope.mp4"}})
    assert missing.status_code == 403
    s3.create_bucket(Bucket="private")
    s3.put_object(Bucket="private", Key="in/clip.mp4", Body=clip)
    elsewhere = client.post(URL, json={"s3": {"bucket": "private", "key": "in/clip.mp4"}})
    assert elsewhere.status_code == 403


def test_bad_files_are_clear_4xx(client: TestClient, use: Use, clip: bytes, tmp_path: Path) -> None:
    use()
    audio = make_audio_only(tmp_path / "a.m4a").read_bytes()
    cases = [
        (b"", 400, "empty"),
        (clip[:40] + bytes(range(256)) * 8, 400, "corrupt"),
        (clip[: len(clip) // 2], 400, "truncated"),
        (audio, 415, "no video stream"),
        (image_bytes(), 415, "still jpeg image"),
        (b"%PDF-1.7\n" + b"x" * 600, 415, "not a video"),
    ]
    for data, status, words in cases:
        response = client.post(URL, files={"video": ("v.mp4", data, "video/mp4")})
        assert response.status_code == status, (words, response.text)
        assert words in response.json()["detail"]


def test_limits_are_413_and_say_which_setting(client: TestClient, use: Use, clip: bytes) -> None:
    use(video_max_duration_s=2.0)
    response = client.post(URL, files={"video": ("v.mp4", clip, "video/mp4")})
    assert response.status_code == 413
    assert "VIDEO_MAX_DURATION_S" in response.json()["detail"]

    use(max_video_bytes=len(clip) - 1)
    for request in (
        {"files": {"video": ("v.mp4", clip, "video/mp4")}},
        {"json": {"video_base64": base64.b64encode(clip).decode()}},
    ):
        response = client.post(URL, **request)
        assert response.status_code == 413, response.text
        assert "MAX_VIDEO_BYTES" in response.json()["detail"]


def test_request_shape_errors(client: TestClient, use: Use, clip: bytes) -> None:
    use()
    both = client.post(URL, json={"url": "https://example.com/a.mp4", "video_base64": "AAAA"})
    assert both.status_code == 422
    assert "exactly one" in both.json()["detail"]
    assert client.post(URL, files={"policy": (None, "default")}).status_code == 400  # no video
    assert client.post(URL, content=b"x", headers={"content-type": "video/mp4"}).status_code == 415
    unknown = client.post(URL, files={"video": ("v.mp4", clip, "video/mp4")}, data={"policy": "nope"})
    assert unknown.status_code == 400
    assert "unknown policy" in unknown.json()["detail"]


def test_documented_in_openapi(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"][URL]["post"]
    assert set(operation["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert "VideoJSONRequest" in schema["components"]["schemas"]
    assert "VideoModerateResponse" in schema["components"]["schemas"]


def test_command_line_prints_one_json_line_per_video(
    moderator: Moderator, clip: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from handler.cli import main

    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    good.write_bytes(clip)
    bad.write_bytes(b"not a video at all")
    assert main(["video", str(good), str(bad)]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["video"] == str(good)
    assert set(first) >= RESPONSE_KEYS
    assert first["duration_s"] == pytest.approx(3.0)
    assert "not a video" in second["error"]
