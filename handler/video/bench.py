"""Video throughput: frames/s scored on a 60 s 720p H.264 clip, and peak memory, on this machine.

    python -m handler.video.bench --model-dir bench-out/clip-base-baked

Makes the clip on first use (moving colour patterns, libx264 `veryfast`, B-frames, keyframes every
250 frames as x264 places them; a minute or two of CPU), loads the checkpoint as the service does,
warms it up, then judges the clip once with early exit off (random weights make no clear verdict) and
writes bench-out/video-bench.json. Decoding is also timed alone, so the split between decoding and the
model shows.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from handler.core.moderator import build_moderator
from handler.settings import Settings
from handler.video.frames import VideoFile
from handler.video.judge import moderate_video, sampling_limits


def make_clip(path: Path, seconds: int = 60, size: tuple[int, int] = (1280, 720), fps: int = 30) -> Path:
    """A clip whose every frame differs (scrolling gradients), so the decoder does real work."""
    width, height = size
    rows, cols = np.mgrid[0:height, 0:width]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(seconds * fps):
            pixels = np.stack(
                [(cols + 3 * i) % 256, (rows * 2 + i) % 256, ((cols ^ rows) + 5 * i) % 256], axis=-1
            ).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run(model_dir: Path, clip: Path, precision: str = "auto") -> dict[str, Any]:
    settings = Settings(model_dir=model_dir, video_early_exit=False, inference_precision=precision)
    rss_before_model = peak_rss_mib()
    mod = build_moderator(settings)
    policy = mod.policies.default
    edge = mod.encoder.preprocess.shortest_edge
    mod.moderate([Image.new("RGB", (edge, edge))] * settings.video_batch_size, policy)  # warm-up
    rss_model = peak_rss_mib()

    started = time.perf_counter()
    decoded = VideoFile(clip, "mp4", sampling_limits(settings, edge))
    decode_frames = sum(1 for _ in decoded.frames())
    decode_s = time.perf_counter() - started

    started = time.perf_counter()
    verdict = moderate_video(clip, "mp4", mod, policy, settings, edge)
    total_s = time.perf_counter() - started
    frames = len(verdict.frames)
    return {
        "clip": str(clip),
        "clip_bytes": clip.stat().st_size,
        "duration_s": round(verdict.duration_s, 2),
        "model_dir": str(model_dir),
        "runtime": mod.encoder.runtime.value,
        "precision": mod.encoder.precision.value,
        "batch_size": settings.video_batch_size,
        "frames_scored": frames,
        "seconds": round(total_s, 2),
        "frames_per_s": round(frames / total_s, 2),
        "decode_only_s": round(decode_s, 2),
        "decode_only_frames": decode_frames,
        "frames_decoded": decoded.decoded,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_rss_after_model_load_mib": round(rss_model, 1),
        "peak_rss_before_model_mib": round(rss_before_model, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="a (full-size) checkpoint")
    parser.add_argument("--clip", type=Path, default=Path("bench-out/video/clip-60s-720p.mp4"))
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "int8", "bf16"),
        default="auto",
        help="INFERENCE_PRECISION (auto: int8 on a baked model whose gate passed, as deployed)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out/video-bench.json"))
    args = parser.parse_args()
    if not args.clip.exists():
        make_clip(args.clip)
    result = run(args.model_dir, args.clip, args.precision)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
