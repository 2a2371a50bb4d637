"""The ONNX Runtime runtime: the baked towers (image fp32 and int8, text fp32) served with no torch.

A baked model directory holds `onnx/manifest.json` (written by `python -m handler bake`): the files, the
logit scale, the parity figures and whether each int8 image tower passed its gate. There are two int8
towers: `int8` (8-bit weights) for CPUs whose int8 kernels sum products exactly, and `int8-w7` (7-bit
weights, at most 64 in magnitude, so no pair of products passes 16 bits) for those that would clip them
(`handler.core.cpu.int8_products_exact`); the manifest keeps each one's gate under its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from handler.exceptions import ConfigurationError

EXPORT_DIR = "onnx"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "clip-moderation-onnx/1"
IMAGE_FP32 = "image_fp32.onnx"
IMAGE_INT8 = "image_int8.onnx"
IMAGE_INT8_W7 = "image_int8_w7.onnx"
TEXT_FP32 = "text_fp32.onnx"
#: Image towers by the precision name they serve (also the manifest key of an int8 tower's gate).
IMAGE_TOWERS = {"fp32": IMAGE_FP32, "int8": IMAGE_INT8, "int8-w7": IMAGE_INT8_W7}
INT8_TOWERS = ("int8", "int8-w7")


def has_onnx_export(model_dir: Path) -> bool:
    out = model_dir / EXPORT_DIR
    return all((out / name).is_file() for name in (MANIFEST_FILE, IMAGE_FP32, TEXT_FP32))


def read_manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / EXPORT_DIR / MANIFEST_FILE
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path} ({exc}); bake the model again") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ConfigurationError(f"{path} is not a {MANIFEST_FORMAT} manifest; bake the model again")
    return manifest


def int8_usable(model_dir: Path, manifest: dict[str, Any], tower: str) -> bool:
    """The int8 image tower `tower` ("int8" or "int8-w7") exists and passed its bake gate."""
    gate = manifest.get(tower) or {}
    return bool(gate.get("passed")) and (model_dir / EXPORT_DIR / IMAGE_TOWERS[tower]).is_file()


def session_options(threads: int) -> Any:
    """One request at a time per process (Lambda's model): all granted cores on one operator at a time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no per-session initializer notices in the logs
    # The worker threads spin while a run lasts (between its operators) but not after it: by default they
    # spin on for tens of ms, a core's worth of CPU taken from what the request does next (the response,
    # the next request's decode, the S3 flow's reads); back to back, one image took 13% longer for it
    # (38.7 against 34.3 ms, docs/performance.md).
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def open_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(
            str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable models
        raise ConfigurationError(f"ONNX Runtime cannot load {path} ({exc}); bake the model again") from exc


class OnnxImageTower:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, pixel_values: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixel_values, dtype=np.float32)
        result: np.ndarray = self.session.run(None, {self.input_name: pixels})[0]
        return result


class OnnxTextTower:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.names = [i.name for i in session.get_inputs()]

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = dict(
            zip(self.names, (input_ids.astype(np.int64), attention_mask.astype(np.int64)), strict=True)
        )
        result: np.ndarray = self.session.run(None, feeds)[0]
        return result


def load_image_tower(model_dir: Path, tower: str, threads: int) -> OnnxImageTower:
    """`tower`: "fp32", "int8" or "int8-w7" (IMAGE_TOWERS)."""
    return OnnxImageTower(open_session(model_dir / EXPORT_DIR / IMAGE_TOWERS[tower], threads))


def load_text_tower(model_dir: Path, threads: int) -> OnnxTextTower:
    return OnnxTextTower(open_session(model_dir / EXPORT_DIR / TEXT_FP32, threads))
