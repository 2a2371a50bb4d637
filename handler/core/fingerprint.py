"""The backbone fingerprint: a stable hash of the image tower's weights, which trained heads are bound to.

It hashes the image tower's tensors (names, dtypes, shapes and raw little-endian bytes) whatever form
holds them: `model.safetensors` is read straight from the file, a `pytorch_model.bin` is unpickled
weights-only, shards are merged. The same weights give the same fingerprint in every form. It is cached
in a small file beside the weights (refreshed when the weights change size or modification time); a
baked model directory has no weights any more (ONNX holds them), so its cache, written by `bake` from
the source checkpoint, is the record. A read-only raw checkpoint just computes it once per process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from handler.core.checkpoint import Weights, find_weights, load_state_dict
from handler.exceptions import ConfigurationError

FINGERPRINT_FILE = "backbone_fingerprint.json"
IMAGE_TOWER_PREFIXES = ("vision_model.", "visual_projection.")
_CHUNK = 8 * 1024 * 1024
_SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def compute_fingerprint(model_dir: Path) -> str:
    """sha256 over the image-tower tensors of the checkpoint in `model_dir` (all tensors if none are
    named so), identical for its safetensors, pickle and sharded forms."""
    weights = find_weights(model_dir)
    if weights is None:
        raise ConfigurationError(
            f"Cannot fingerprint the backbone in {model_dir}: it has neither weights nor a "
            f"{FINGERPRINT_FILE} (bake writes one); trained heads need to know which weights they run on."
        )
    digest = hashlib.sha256()
    try:
        entries = _safetensors_entries(weights) if weights.safetensors else _pickle_entries(weights)
        for header, chunks in entries:
            digest.update(header)
            for chunk in chunks:
                digest.update(chunk)
    except (OSError, ValueError, KeyError, struct.error) as exc:
        raise ConfigurationError(
            f"Cannot fingerprint the backbone weights in {model_dir} ({exc}); "
            "trained heads need readable weights."
        ) from exc
    return digest.hexdigest()[:16]


Entry = tuple[bytes, Iterator[bytes]]


def _entry_header(name: str, dtype: str, shape: list[int]) -> bytes:
    return json.dumps([name, dtype, shape]).encode()


def _selected(names: list[str]) -> list[str]:
    return sorted(n for n in names if n.startswith(IMAGE_TOWER_PREFIXES)) or sorted(names)


def _safetensors_entries(weights: Weights) -> Iterator[Entry]:
    index: dict[str, tuple[Path, int, dict[str, Any]]] = {}
    for path in weights.files:
        with path.open("rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_length))
        header.pop("__metadata__", None)
        for name, spec in header.items():
            index[name] = (path, 8 + header_length, spec)
    for name in _selected(list(index)):
        path, base, spec = index[name]
        start, end = (int(v) for v in spec["data_offsets"])
        header = _entry_header(name, str(spec["dtype"]), [int(d) for d in spec["shape"]])
        yield header, _read_range(path, base + start, end - start, name)


def _read_range(path: Path, offset: int, length: int, name: str) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        yield from _chunks(handle, length, name)


def _chunks(handle: BinaryIO, remaining: int, name: str) -> Iterator[bytes]:
    while remaining > 0:
        chunk = handle.read(min(_CHUNK, remaining))
        if not chunk:
            raise ValueError(f"{name} runs past the end of the file")
        remaining -= len(chunk)
        yield chunk


def _pickle_entries(weights: Weights) -> Iterator[Entry]:
    import torch

    state = load_state_dict(weights)  # weights_only=True: never runs code from the file
    for name in _selected(list(state)):
        tensor = state[name].detach().contiguous()
        dtype = _SAFETENSORS_DTYPES.get(str(tensor.dtype).removeprefix("torch."))
        if dtype is None:
            raise ValueError(f"{name} has an unsupported dtype {tensor.dtype}")
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        yield _entry_header(name, dtype, list(tensor.shape)), iter((raw,))


def write_fingerprint(model_dir: Path, fingerprint: str | None = None) -> str:
    """Cache the fingerprint in `model_dir` (bake calls this); computes it unless given. Returns it.
    Stamped with the weights' size and time when the directory has weights (a baked one has none)."""
    fingerprint = fingerprint or compute_fingerprint(model_dir)
    weights = find_weights(model_dir)
    record = {"fingerprint": fingerprint, **(weights.stamp if weights is not None else {})}
    (model_dir / FINGERPRINT_FILE).write_text(json.dumps(record) + "\n")
    return fingerprint


@lru_cache
def backbone_fingerprint(model_dir: Path) -> str:
    """The fingerprint of the checkpoint in `model_dir`: from the cache file when it is current."""
    weights = find_weights(model_dir)
    try:
        record = json.loads((model_dir / FINGERPRINT_FILE).read_text())
        if weights is None or {k: record.get(k) for k in ("size", "mtime_ns")} == weights.stamp:
            return str(record["fingerprint"])
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        pass
    fingerprint = compute_fingerprint(model_dir)
    with contextlib.suppress(OSError):  # a read-only model directory: computed once per process instead
        write_fingerprint(model_dir, fingerprint)
    return fingerprint
