"""The `evaluate` and `train-head` commands (registered by handler.cli). Heavy imports stay inside."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from handler.exceptions import ConfigurationError, InputError

TOOL_MODULES = ("sklearn", "matplotlib")


def require_tools() -> None:
    """The evaluation tools' libraries are not in the serving image; say how to get them."""
    import importlib.util

    missing = [name for name in TOOL_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(
            f"evaluate and train-head need {', '.join(missing)}: pip install -r requirements-tools.txt"
        )


def parse_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InputError(f"--map takes CLASS=LABEL (got {pair!r})")
        mapping[source.strip()] = target.strip()
    return mapping


def _evaluate(args: argparse.Namespace) -> int:
    require_tools()
    from handler.core.labels import parse_classes
    from handler.core.moderator import get_moderator
    from handler.evaluation.evaluate import evaluate
    from handler.evaluation.options import EvaluateOptions

    options = EvaluateOptions(
        dataset=Path(args.dataset) if args.dataset else None,
        out=Path(args.out),
        classes=parse_classes(args.classes) if args.classes else None,
        policy=args.policy,
        head=Path(args.head) if args.head else None,
        threshold=args.threshold,
        mapping=parse_map(args.map),
        positive=args.positive,
        target_recall=args.target_recall,
        target_fpr=args.target_fpr,
        batch_size=args.batch_size,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        feedback=args.feedback,
        feedback_images=[Path(p) for p in args.feedback_images],
        write_policy=Path(args.write_policy) if args.write_policy else None,
        progress=not args.no_progress,
    )
    report = evaluate(get_moderator(), options)
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    m = report["metrics"]
    summary = {
        "out": str(options.out),
        "images": m["images"],
        "accuracy": round(m["accuracy"], 4),
        "balanced_accuracy": round(m["balanced_accuracy"], 4),
        "macro_f1": round(m["macro"]["f1"], 4),
        "unknown": m["unknown"],
        "misclassified": len(report["misclassified"]),
        "files": report["files"],
    }
    if "calibration" in report:
        summary["policy_file"] = report["calibration"]["policy_file"]
    print(json.dumps(summary))
    return 0


def _train_head(args: argparse.Namespace) -> int:
    require_tools()
    from handler.core.heads import HeadKind
    from handler.core.moderator import get_moderator
    from handler.evaluation.embedding_cache import default_cache_dir
    from handler.evaluation.train_head import TrainOptions, train_head

    options = TrainOptions(
        dataset=Path(args.dataset) if args.dataset else None,
        kind=HeadKind(args.kind),
        out=Path(args.out) if args.out else None,
        name=args.name,
        scores=Path(args.scores) if args.scores else None,
        model="mlp" if args.model == "mlp" else "linear",
        folds=args.folds,
        c=args.c,
        hidden=args.hidden,
        score_range=tuple(args.score_range) if args.score_range else None,
        cache_dir=None
        if args.no_cache
        else (Path(args.cache_dir) if args.cache_dir else default_cache_dir()),
        feedback=args.feedback,
        feedback_images=[Path(p) for p in args.feedback_images],
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    if options.dataset is None and options.scores is None and not options.feedback:
        raise InputError("give a DATASET folder (or CSV), --scores for a regressor, or --feedback")
    print(json.dumps(train_head(get_moderator(), options)))
    return 0


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", nargs="?", help="a folder with one sub-folder per label, or a CSV of path,label"
    )
    parser.add_argument(
        "--feedback",
        action="append",
        default=[],
        metavar="SOURCE",
        help="feedback records as labelled data: a directory or s3://bucket/prefix (repeatable)",
    )
    parser.add_argument(
        "--feedback-images",
        action="append",
        default=[],
        metavar="DIR",
        help="where to find images that feedback names only by sha256 (repeatable)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser("evaluate", help="evaluate zero-shot classes, a policy or a head on labelled images")
    _data_arguments(ev)
    what = ev.add_mutually_exclusive_group()
    what.add_argument("--classes", help="zero-shot classes, comma-separated (default: the dataset's labels)")
    what.add_argument("--policy", help="a policy file, or the name of a served policy")
    what.add_argument("--head", help="a classifier head file (from train-head)")
    ev.add_argument("--threshold", type=float, help="zero-shot/head: below this top probability -> unknown")
    ev.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="CLASS=LABEL",
        help="count a model class as a dataset label (repeatable; probabilities are summed)",
    )
    ev.add_argument(
        "--positive", help="the class for ROC/PR curves (default: first flagged class, nsfw, or first)"
    )
    target = ev.add_mutually_exclusive_group()
    target.add_argument(
        "--target-recall", type=float, help="operating point: highest threshold with this recall"
    )
    target.add_argument("--target-fpr", type=float, help="operating point: lowest threshold within this FPR")
    ev.add_argument("--out", default="evaluation", help="report folder (outside the dataset)")
    ev.add_argument("--cache-dir", help="reuse/store embeddings here (default: no cache, timings are real)")
    ev.add_argument(
        "--write-policy", metavar="NEW_FILE", help="with --policy: write it with calibrated thresholds"
    )
    ev.set_defaults(func=_evaluate)

    th = sub.add_parser("train-head", help="train a classifier or score head on CLIP image embeddings")
    _data_arguments(th)
    th.add_argument("--kind", choices=("classifier", "regressor"), required=True)
    th.add_argument("--scores", help="regressor: CSV of path,score (paths relative to DATASET or the CSV)")
    th.add_argument("--model", choices=("ridge", "mlp"), default="ridge", help="regressor model")
    th.add_argument(
        "--score-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="regressor output range"
    )
    th.add_argument("--out", help="head file (default heads/NAME.safetensors)")
    th.add_argument("--name", help="head name (default: the kind)")
    th.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    th.add_argument("--c", type=float, default=1.0, help="classifier: inverse regularisation strength")
    th.add_argument("--hidden", type=int, default=64, help="mlp: hidden units")
    th.add_argument("--seed", type=int, default=0)
    th.add_argument("--cache-dir", help="embedding cache (default ~/.cache/clip-moderation/embeddings)")
    th.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    th.set_defaults(func=_train_head)
