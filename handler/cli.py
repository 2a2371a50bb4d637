"""The command line: serve, classify, and the tooling commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from handler.exceptions import ConfigurationError, InputError
from handler.logs import configure_cli_logging
from handler.settings import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from handler.moderator import get_moderator

    settings = get_settings()
    get_moderator()  # load before binding the port: a bad MODEL_DIR or policy ends here with one sentence
    uvicorn.run("handler.app:app", host=args.host or settings.host, port=args.port or settings.port)
    return 0


def _classify(args: argparse.Namespace) -> int:
    from handler.api.classify import parse_classes
    from handler.moderator import get_moderator

    labels = parse_classes(args.classes)
    mod = get_moderator()
    status = 0
    for path in args.images:
        try:
            result = mod.classify([mod.decode(Path(path).read_bytes())], labels, args.threshold)[0]
            line = {
                "image": path,
                "prediction": result.prediction,
                "label_probabilities": result.probabilities,
            }
        except (InputError, OSError) as exc:
            line, status = {"image": path, "error": str(exc)}, 1
        print(json.dumps(line), flush=True)
    return status


def _random_checkpoint(args: argparse.Namespace) -> int:
    from handler.random_checkpoint import make_random_checkpoint

    print(make_random_checkpoint(Path(args.out), size=args.size))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m handler", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API under uvicorn ($PORT, default 8000)")
    serve.add_argument("--host", default=None, help="bind address (default $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default $PORT or 8000)")
    serve.set_defaults(func=_serve)

    classify = sub.add_parser("classify", help="classify image files; one JSON line per image")
    classify.add_argument("images", nargs="+", help="image files")
    classify.add_argument("--classes", default="nsfw, sfw", help="comma-separated classes")
    classify.add_argument("--threshold", type=float, default=None, help="below it the prediction is unknown")
    classify.set_defaults(func=_classify)

    rnd = sub.add_parser(
        "random-checkpoint", help="write a random-weight CLIP checkpoint (tests, benchmarks)"
    )
    rnd.add_argument("--out", required=True, help="output directory")
    rnd.add_argument("--size", choices=("tiny", "base"), default="tiny", help="base = ViT-B/32 sizes")
    rnd.set_defaults(func=_random_checkpoint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_cli_logging(get_settings().log_level)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
