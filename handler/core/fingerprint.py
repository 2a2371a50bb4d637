"""The backbone fingerprint: a stable hash of the image tower's weights, which trained heads are bound to.

It hashes the raw tensor bytes (with names, dtypes and shapes) of the image tower in `model.safetensors`,
read straight from the file, so it is the same for a checkpoint, its bake and any copy of it, whatever
the runtime (TorchScript or transformers) that serves it. It is cached in a small file beside the weights
(written by `bake`; refreshed when the weights file changes size or modification time); a read-only
model directory just computes it again, once per process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from functools import lru_cache
from pathlib import Path

from handler.exceptions import ConfigurationError

WEIGHTS_FILE = "model.safetensors"
FINGERPRINT_FILE = "backbone_fingerprint.json"
IMAGE_TOWER_PREFIXES = ("vision_model.", "visual_projection.")
_CHUNK = 8 * 1024 * 1024


def compute_fingerprint(weights: Path) -> str:
    """sha256 over the image-tower tensors of a safetensors file (all tensors if none are named so)."""
    try:
        with weights.open("rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_length))
            header.pop("__metadata__", None)
            names = sorted(n for n in header if n.startswith(IMAGE_TOWER_PREFIXES)) or sorted(header)
            digest = hashlib.sha256()
            for name in names:
                spec = header[name]
                start, end = spec["data_offsets"]
                digest.update(json.dumps([name, spec["dtype"], spec["shape"]]).encode())
                handle.seek(8 + header_length + start)
                remaining = end - start
                while remaining > 0:
                    chunk = handle.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise ValueError(f"{name} runs past the end of the file")
                    digest.update(chunk)
                    remaining -= len(chunk)
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise ConfigurationError(
            f"Cannot fingerprint the backbone weights {weights} ({exc}); trained heads need a checkpoint "
            f"with a readable {WEIGHTS_FILE}."
        ) from exc
    return digest.hexdigest()[:16]


def _stamp(weights: Path) -> dict[str, int]:
    stat = weights.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_fingerprint(model_dir: Path, fingerprint: str | None = None) -> str:
    """Cache the fingerprint beside the weights (bake calls this); computes it unless given. Returns it."""
    weights = model_dir / WEIGHTS_FILE
    fingerprint = fingerprint or compute_fingerprint(weights)
    record = {"fingerprint": fingerprint, **_stamp(weights)}
    (model_dir / FINGERPRINT_FILE).write_text(json.dumps(record) + "\n")
    return fingerprint


@lru_cache
def backbone_fingerprint(model_dir: Path) -> str:
    """The fingerprint of the checkpoint in `model_dir`: from the cache file when it is current."""
    weights = model_dir / WEIGHTS_FILE
    try:
        record = json.loads((model_dir / FINGERPRINT_FILE).read_text())
        if {k: record.get(k) for k in ("size", "mtime_ns")} == _stamp(weights):
            return str(record["fingerprint"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    fingerprint = compute_fingerprint(weights)
    with contextlib.suppress(OSError):  # a read-only model directory: computed once per process instead
        write_fingerprint(model_dir, fingerprint)
    return fingerprint
