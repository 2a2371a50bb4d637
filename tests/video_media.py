"""Test media made on the spot with PyAV and Pillow (no files checked in), and a colour-reading scorer.

Clips are tiny (64x48, 10 fps) solid colours, so each takes milliseconds to encode and decode. The
`ColourScorer` stands in for the model behind the same interface (`embed`, `judge_embeddings`): red
frames score high on `bad`, dark red just over its threshold, green on `meh`, anything else on `fine`,
and the policy's own rule (`scoring.judge`) turns the scores into decisions.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from handler.core.policy import Policy
from handler.core.scoring import Decision, judge

RED = (255, 0, 0)
DARK_RED = (150, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
FPS = 10
SIZE = (64, 48)

Clip = Sequence[tuple[tuple[int, int, int], float]]  # (colour, seconds) runs


def encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def needs(codec: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not encoder_available(codec), reason=f"PyAV here has no {codec} encoder")


def make_video(
    path: Path,
    clip: Clip,
    *,
    codec: str = "libx264",
    fps: int = FPS,
    size: tuple[int, int] = SIZE,
    keyint: int | None = None,
    bframes: int = 0,
    container_options: dict[str, str] | None = None,
    rotation: int = 0,
    left: tuple[int, int, int] | None = None,
    extra_params: str = "",
) -> Path:
    """Solid-colour runs (the left half `left`, if given) encoded with `codec`; for H.264 no scene-cut
    keyframes, and keyframes `keyint` apart if given."""
    width, height = size
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            params = f"scenecut=0:bframes={bframes}:keyint={keyint or 10_000}:min-keyint={keyint or 25}"
            params += f":{extra_params}" if extra_params else ""
            stream.options = {"x264-params": params, "preset": "ultrafast" if not bframes else "veryfast"}
        elif keyint is not None:
            stream.codec_context.gop_size = keyint
        if rotation:
            stream.set_display_rotation(rotation)  # a phone's display matrix: turn by this, anticlockwise
        index = 0
        for colour, seconds in clip:
            pixels = np.full((height, width, 3), colour, dtype=np.uint8)
            if left is not None:
                pixels[:, : width // 2] = left
            for _ in range(round(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, fps)
                index += 1
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_audio_only(path: Path) -> Path:
    """An AAC track in an MP4 (.m4a): a video container with no video in it."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def animation(fmt: str, clip: Clip, size: tuple[int, int] = SIZE) -> bytes:
    """An animated GIF or WebP: one frame per colour run, shown for the run's length."""
    frames = [Image.new("RGB", size, colour) for colour, _ in clip]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format=fmt,
        save_all=True,
        append_images=frames[1:],
        duration=[round(seconds * 1000) for _, seconds in clip],
        loop=0,
    )
    return buffer.getvalue()


def colour_policy(threshold: float = 0.5) -> Policy:
    return Policy.model_validate(
        {
            "name": "colours",
            "categories": [
                {"name": "bad", "prompts": ["red"], "threshold": threshold, "action": "quarantine"},
                {"name": "meh", "prompts": ["green"], "threshold": threshold, "action": "review"},
                {"name": "fine", "prompts": ["anything else"], "safe": True},
            ],
        }
    )


class ColourScorer:
    """Scores by mean colour; records the batches it saw (sizes and frame images alive at each call)."""

    def __init__(self, alive: Callable[[], int] | None = None) -> None:
        self.batches: list[int] = []
        self.alive = alive  # how many sampled images are still in memory (the test tracks them)
        self.most_alive = 0

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.batches.append(len(images))
        if self.alive is not None:
            self.most_alive = max(self.most_alive, self.alive())
        means = np.stack(
            [np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0) for image in images]
        )
        return means / 255.0

    def judge_embeddings(self, embeddings: np.ndarray, policy: Policy) -> list[Decision]:
        return [judge(policy, np.array(self.row(r, g, b))) for r, g, b in embeddings.tolist()]

    @staticmethod
    def row(r: float, g: float, b: float) -> list[float]:
        """Probabilities of (bad, meh, fine)."""
        if r > 0.8 and g < 0.2:
            return [0.9, 0.05, 0.05]
        if r > 0.4 and g < 0.2:  # dark red: flagged, but not by the early-exit margin
            return [0.55, 0.05, 0.4]
        if g > 0.8 and r < 0.2:
            return [0.05, 0.9, 0.05]
        return [0.05, 0.05, 0.9]
