"""Export CLIP's towers to ONNX with torch.onnx (build time only), and quantise the image tower to int8.

The image tower (its last layer computed for the class token only: `PooledImageTower`) goes out in
fp32 and, dynamically quantised (int8 weights per output channel, int8 activations scaled per batch at
run time), in int8; the text tower in fp32 (it runs at bake time and on a new label set only). Batch is
dynamic; text is padded to a fixed length.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from handler.core.onnx_runtime import EXPORT_DIR, IMAGE_FP32, IMAGE_TOWERS, TEXT_FP32

OPSET = 18


class PooledImageTower(torch.nn.Module):
    """The image tower as exported: transformers' vision transformer and projection, with the last
    encoder layer computed for the class token only.

    CLIP's image embedding reads one position of the last layer (the class token, through
    `post_layernorm`), and in that layer every other position's attention output and MLP is computed
    only to be dropped: 49 of 50 rows of the out-projection and of the MLP (three quarters of a
    layer's multiply-adds), and 49 of 50 query rows. This module skips them, so the graph does about
    7% less work for ViT-B/32 and gives the same numbers (the bake's parity check holds it to
    transformers within 1e-4). Keys and values still come from every position.
    """

    def __init__(self, tower: Any) -> None:
        super().__init__()
        vision = tower.vision_model
        self.embeddings = vision.embeddings
        self.pre_layrnorm = vision.pre_layrnorm
        self.layers = vision.encoder.layers
        self.post_layernorm = vision.post_layernorm
        self.visual_projection = tower.visual_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.pre_layrnorm(self.embeddings(pixel_values))
        for layer in self.layers[:-1]:
            out = layer(hidden, None, None)
            hidden = out[0] if isinstance(out, tuple) else out
        pooled = self.post_layernorm(_class_token_of_last_layer(self.layers[-1], hidden))
        features: torch.Tensor = self.visual_projection(pooled)
        return features


def _class_token_of_last_layer(layer: Any, hidden: torch.Tensor) -> torch.Tensor:
    """`CLIPEncoderLayer(hidden)[:, 0]` (no attention mask: the vision tower has none)."""
    attention = layer.self_attn
    batch, length, width = hidden.shape
    heads, head_dim = attention.num_heads, attention.head_dim
    normed = layer.layer_norm1(hidden)
    query = attention.q_proj(normed[:, :1]).view(batch, 1, heads, head_dim).transpose(1, 2)
    keys = attention.k_proj(normed).view(batch, length, heads, head_dim).transpose(1, 2)
    values = attention.v_proj(normed).view(batch, length, heads, head_dim).transpose(1, 2)
    weights = torch.softmax(torch.matmul(query, keys.transpose(2, 3)) * attention.scale, dim=-1)
    attended = torch.matmul(weights, values).transpose(1, 2).reshape(batch, 1, width)
    token = hidden[:, :1] + attention.out_proj(attended)
    token = token + layer.mlp(layer.layer_norm2(token))
    cls: torch.Tensor = token[:, 0]
    return cls


@contextmanager
def _quiet_export() -> Iterator[None]:
    """torch.onnx logs each torchvision op it skips; the quantiser suggests a pre-processing step."""
    loggers = [logging.getLogger("torch.onnx"), logging.getLogger()]  # quantize_dynamic logs on the root
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_towers(
    image_tower: torch.nn.Module, text_tower: torch.nn.Module, out: Path, image_side: int, text_length: int
) -> Path:
    """Write `out/onnx/{image_fp32,text_fp32}.onnx`, one self-contained file each; returns the folder."""
    folder = out / EXPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    pixels = torch.randn(2, 3, image_side, image_side)
    ids = torch.ones(2, text_length, dtype=torch.long)
    with torch.no_grad(), _quiet_export():
        torch.onnx.export(
            PooledImageTower(image_tower),
            (pixels,),
            str(folder / IMAGE_FP32),
            input_names=["pixel_values"],
            output_names=["image_features"],
            dynamic_shapes={"pixel_values": {0: batch}},
            opset_version=OPSET,
            external_data=False,
            dynamo=True,
            verbose=False,
        )
        torch.onnx.export(
            text_tower,
            (ids, torch.ones_like(ids)),
            str(folder / TEXT_FP32),
            input_names=["input_ids", "attention_mask"],
            output_names=["text_features"],
            dynamic_shapes={"input_ids": {0: batch}, "attention_mask": {0: batch}},
            opset_version=OPSET,
            external_data=False,
            dynamo=True,
            verbose=False,
        )
    return folder


def quantize_image_tower(folder: Path, tower: str) -> Path:
    """int8 weights per output channel for the MatMul/Gemm layers (nearly all of ViT's compute); the
    patch-embedding convolution stays fp32. Activations are quantised per batch at run time, so there is
    no calibration step to overfit: the photographs only check the result (handler/tools/int8_gate.py).

    `tower` "int8": weights in [-127, 127], for CPUs whose int8 kernels sum products exactly. "int8-w7":
    weights in [-64, 64] (ONNX Runtime's `reduce_range`), so that two products of activations up to 255
    sum to at most 255 * 128 = 32640 and fit the 16 bits that VPMADDUBSW (x86 without VNNI or AMX)
    saturates to: the same numbers on every CPU, for twice the weights' rounding error.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = folder / IMAGE_TOWERS[tower]
    with _quiet_export():
        quantize_dynamic(
            folder / IMAGE_FP32,
            target,
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            reduce_range=tower == "int8-w7",
        )
    return target
