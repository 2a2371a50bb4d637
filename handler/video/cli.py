"""The `video` command (registered by handler.cli): judge video files, one JSON line each."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def _video(args: argparse.Namespace) -> int:
    from handler.core.moderator import get_moderator
    from handler.exceptions import InputError
    from handler.video.inputs import head_of, video_kind
    from handler.video.judge import moderate_video
    from handler.video.response import VideoModerateResponse

    mod = get_moderator()
    policy = mod.policy(args.policy)
    edge = mod.encoder.preprocess.shortest_edge
    status = 0
    for name in args.videos:
        path = Path(name)
        started = time.perf_counter()
        line: dict[str, Any]
        try:
            verdict = moderate_video(path, video_kind(head_of(path)), mod, policy, mod.settings, edge)
            elapsed_ms = (time.perf_counter() - started) * 1000
            response = VideoModerateResponse.from_verdict(verdict, mod.model_id, elapsed_ms)
            line = {"video": name, **response.model_dump(mode="json")}
        except (InputError, OSError) as exc:
            line, status = {"video": name, "error": getattr(exc, "detail", str(exc))}, 1
        print(json.dumps(line), flush=True)
    return status


def add_commands(sub: Any) -> None:
    video = sub.add_parser("video", help="judge video files (or animated GIF/WebP); one JSON line each")
    video.add_argument("videos", nargs="+", help="video files")
    video.add_argument("--policy", default=None, help="policy name (default: the default policy)")
    video.set_defaults(func=_video)
