"""The command line: serve, classify, and the tooling commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from handler.backfill.cli import add_commands as add_backfill_commands
from handler.evaluation.cli import add_commands as add_eval_commands
from handler.exceptions import ConfigurationError, InputError
from handler.logs import configure_cli_logging
from handler.settings import get_settings
from handler.video.cli import add_commands as add_video_commands


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from handler.core.moderator import get_moderator

    settings = get_settings()
    get_moderator()  # load before binding the port: a bad MODEL_DIR or policy ends here with one sentence
    uvicorn.run("handler.app:app", host=args.host or settings.host, port=args.port or settings.port)
    return 0


def _classify(args: argparse.Namespace) -> int:
    from handler.core.labels import parse_classes
    from handler.core.moderator import get_moderator
    from handler.inputs.images import ImageLimits, decode_still

    labels = parse_classes(args.classes)
    mod = get_moderator()
    limits, cfg = ImageLimits.from_settings(mod.settings), mod.encoder.preprocess
    status = 0
    for path in args.images:
        try:
            result = mod.classify(
                [decode_still(Path(path).read_bytes(), limits, cfg)], labels, args.threshold
            )[0]
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
    from handler.tools.random_checkpoint import make_random_checkpoint

    print(make_random_checkpoint(Path(args.out), size=args.size))
    return 0


def _bake(args: argparse.Namespace) -> int:
    from handler.tools.bake import bake
    from handler.tools.int8_gate import Gate

    bounds = {"min_cosine": args.int8_min_cosine, "min_verdict_agreement": args.int8_min_verdict_agreement}
    summary = bake(
        Path(args.out),
        args.model_id,
        Path(args.from_dir) if args.from_dir else None,
        gate=Gate(**{k: v for k, v in bounds.items() if v is not None}),
        check_images=Path(args.check_images) if args.check_images else None,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from handler.tools.bench import format_table, run, run_lambda_cpu_phase

    model_dir = Path(args.model_dir) if args.model_dir else None
    if args.phase == "lambda-cpu":  # the child process bench starts itself, with bf16/AMX capped
        run_lambda_cpu_phase(Path(args.work), model_dir, args.requests, args.batch)
        return 0
    results = run(Path(args.work), model_dir, args.requests, args.batch, args.cold_runs)
    Path(args.work, "bench.json").write_text(json.dumps(results, indent=2))
    print(format_table(results))
    return 0


def _compare_precision(args: argparse.Namespace) -> int:
    from PIL import Image

    from handler.core.labels import parse_classes
    from handler.core.model import Precision
    from handler.tools.parity import compare, load_pair

    settings = get_settings()
    requested = Precision(args.precision)
    reference, fast = load_pair(settings.model_dir, requested)
    # int8 is the int8 tower made for this CPU (int8-w7 where 8-bit weights would be clipped); the
    # report names the one compared.
    if not (fast.precision is requested or (requested is Precision.int8 and fast.precision.is_int8)):
        where = (
            f"a baked model directory whose {requested} tower passed its gate"
            if requested.is_int8
            else ("a raw checkpoint (the transformers runtime) on a CPU with AVX512-BF16 or AMX")
        )
        print(f"error: {args.precision} needs {where}; the service would use fp32 here", file=sys.stderr)
        return 2
    from handler.core.policy import PolicySet

    images = [Image.open(p).convert("RGB") for p in args.images]
    policy = PolicySet.from_paths(settings.moderation_policy).default
    report = compare(reference, fast, images, parse_classes(args.classes), policy)
    print(json.dumps(report.as_dict()))
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

    bake = sub.add_parser("bake", help="prepare a model directory at image build time")
    bake.add_argument("--model-id", default=get_settings().model_id, help="checkpoint to download")
    bake.add_argument("--out", required=True, help="output directory (new or empty), e.g. /opt/model")
    bake.add_argument("--from-dir", default=None, help="copy a local checkpoint instead of downloading")
    bake.add_argument(
        "--check-images", default=None, help="photographs for the int8 check (default: scikit-image's)"
    )
    bake.add_argument("--int8-min-cosine", type=float, help="int8 gate: lowest image cosine (0.97)")
    bake.add_argument(
        "--int8-min-verdict-agreement", type=float, help="int8 gate: share of verdicts as fp32's (0.95)"
    )
    bake.set_defaults(func=_bake)

    bench = sub.add_parser("bench", help="benchmark the thesis path against the service (full-size model)")
    bench.add_argument("--work", default="bench-out", help="where checkpoints and bench.json go")
    bench.add_argument("--model-dir", default=None, help="a checkpoint to use (default: random ViT-B/32)")
    bench.add_argument("--requests", type=int, default=60, help="single-image requests per path")
    bench.add_argument("--batch", type=int, default=32, help="images per batch request")
    bench.add_argument("--cold-runs", type=int, default=3, help="cold starts per side")
    bench.add_argument("--phase", choices=("all", "lambda-cpu"), default="all", help=argparse.SUPPRESS)
    bench.set_defaults(func=_bench)

    parity = sub.add_parser("compare-precision", help="fast path vs fp32 on your images and weights")
    parity.add_argument("images", nargs="+", help="image files (your own, representative)")
    parity.add_argument(
        "--precision",
        choices=("int8", "int8-w7", "bf16"),
        default="int8",
        help="the fast path to check against fp32",
    )
    parity.add_argument("--classes", default="nsfw, sfw", help="labels for the top-1 agreement")
    parity.set_defaults(func=_compare_precision)

    add_eval_commands(sub)  # evaluate, train-head
    add_video_commands(sub)  # video
    add_backfill_commands(sub)  # backfill, backfill status
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
