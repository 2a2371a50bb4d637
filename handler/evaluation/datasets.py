"""Labelled images for evaluate and train-head: a folder per label, a CSV of path,label, or feedback.

Nothing here writes to the user's files: samples are references (a path, `s3://bucket/key`, or a URL)
read when needed.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from handler.exceptions import InputError
from handler.feedback import FeedbackRecord, latest_corrections
from handler.s3 import objects
from handler.s3.events import ObjectRef
from handler.settings import Settings

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".avif", ".heic", ".ico"}
)


@dataclass(frozen=True)
class Sample:
    ref: str  # a local path, s3://bucket/key[?versionId=...], or an http(s) URL
    label: str
    origin: str = "dataset"  # or "feedback"


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def from_folder(root: Path) -> list[Sample]:
    """One sub-folder per label; every image file below it (recursively) has that label."""
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and _visible(p, root)
        )
        samples += [Sample(str(p), folder.name) for p in files]
    return samples


def read_csv_rows(path: Path) -> list[tuple[str, str]]:
    """Rows of (reference, value); a first row whose second cell is not data (e.g. `label`) is a header."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["path", "label"], ["path", "score"]):
        rows = rows[1:]
    bad = [i for i, row in enumerate(rows, start=1) if len(row) < 2 or not row[0].strip()]
    if bad:
        raise InputError(f"{path}: every row needs a path and a value (bad rows: {bad[:5]})")
    return [(row[0].strip(), row[1].strip()) for row in rows]


def resolve_ref(ref: str, *bases: Path) -> str:
    """URLs and absolute paths as given; a relative path against the first base where it exists."""
    if "://" in ref or Path(ref).is_absolute():
        return ref
    for base in bases:
        if (base / ref).exists():
            return str(base / ref)
    return str(bases[0] / ref) if bases else ref


def from_csv(path: Path) -> list[Sample]:
    return [Sample(resolve_ref(ref, path.parent), label) for ref, label in read_csv_rows(path)]


def load_dataset(source: Path) -> list[Sample]:
    """A folder of label folders, or a CSV of path,label (relative paths: relative to the CSV)."""
    if source.is_dir():
        samples = from_folder(source)
    elif source.is_file() and source.suffix.lower() == ".csv":
        samples = from_csv(source)
    else:
        raise InputError(f"{source}: give a folder with one sub-folder per label, or a .csv of path,label")
    if not samples:
        raise InputError(f"{source} holds no images (expected one sub-folder per label)")
    return samples


def load_scores(path: Path, *bases: Path) -> dict[str, float]:
    """A CSV of path,score -> {resolved reference: score}."""
    scores = {}
    for ref, value in read_csv_rows(path):
        try:
            scores[resolve_ref(ref, *bases, path.parent)] = float(value)
        except ValueError as exc:
            raise InputError(f"{path}: score {value!r} for {ref} is not a number") from exc
    return scores


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def index_by_hash(roots: Iterable[Path]) -> dict[str, str]:
    """sha256 -> path of every image file under `roots` (to find images feedback names by hash)."""
    index: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                index.setdefault(file_sha256(path), str(path))
    return index


@dataclass(frozen=True)
class FeedbackSamples:
    samples: list[Sample]
    unresolved: list[str]  # record ids whose image could not be located


def from_feedback(records: list[FeedbackRecord], images: Iterable[Path] = ()) -> FeedbackSamples:
    """Corrections as labelled samples (latest per image): S3 references and URLs as they are, hashes
    looked up among the image files under `images`."""
    by_hash: dict[str, str] | None = None
    samples, unresolved = [], []
    for record in latest_corrections(records):
        image, ref = record.image, None
        if image.s3 is not None:
            version = f"?versionId={image.s3.version_id}" if image.s3.version_id else ""
            ref = f"s3://{image.s3.bucket}/{image.s3.key}{version}"
        elif image.url is not None and image.url.startswith(("http://", "https://")):
            ref = image.url  # never a local path or another scheme: records come from API callers
        elif image.sha256 is not None:
            by_hash = index_by_hash(images) if by_hash is None else by_hash
            ref = by_hash.get(image.sha256)
        if ref is None:
            unresolved.append(record.id)
        else:
            samples.append(Sample(ref, record.correct_label, origin="feedback"))
    return FeedbackSamples(samples, unresolved)


def read_sample(ref: str, settings: Settings) -> bytes:
    """The bytes behind a reference (S3 object version, URL with the service's fetch rules, or file)."""
    if ref.startswith("s3://"):
        bucket, _, rest = ref[len("s3://") :].partition("/")
        key, _, version = rest.partition("?versionId=")
        return _read_s3(ObjectRef(bucket, key, version or None), settings)
    if ref.startswith(("http://", "https://")):
        from handler.inputs.sources import from_url

        return from_url(ref, settings)
    return Path(ref).read_bytes()


def label_counts(samples: Iterable[Sample]) -> dict[str, int]:
    return dict(sorted(Counter(s.label for s in samples).items()))


def _read_s3(ref: ObjectRef, settings: Settings) -> bytes:
    """An object for the operator's tools (the operator's credentials: no API allowlist here)."""
    from botocore.exceptions import ClientError

    from handler.s3.client import get_s3_client
    from handler.s3.faults import error_code, is_gone

    try:
        data, _, _ = objects.read_limited(get_s3_client(), ref, settings.max_image_bytes)
        return data
    except ClientError as exc:
        if is_gone(exc) or error_code(exc) in ("403", "AccessDenied", "NoSuchBucket"):
            raise InputError(f"cannot read {ref}: {error_code(exc)}") from exc
        raise
