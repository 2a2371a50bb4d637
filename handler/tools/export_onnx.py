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
from handler.tools.onnx_attention import TRANSLATIONS, multi_head_attention

OPSET = 18
#: The image graph `export_towers` and `quantize_image_tower` write, as a number the bake's manifest keeps.
#: Bump it with any change to them: `make bench` bakes its checkpoint again when the number differs, so it
#: never measures a graph the code no longer writes. 2: last layer for the class token, patches as a
#: MatMul; 3: query, key and value in one MatMul, attention in one MultiHeadAttention node.
IMAGE_GRAPH_REVISION = 3


class PooledImageTower(torch.nn.Module):
    """The image tower as exported: transformers' vision transformer and projection, computing the same
    numbers with less work (the bake's parity check holds the result to transformers within 1e-4).

    - The last encoder layer runs for the class token only. CLIP's image embedding reads one position
      of the last layer (the class token, through `post_layernorm`); every other position's attention
      output and MLP there is computed only to be dropped: 49 of 50 rows of the out-projection and of
      the MLP (three quarters of a layer's multiply-adds), and 49 of 50 query rows. About 7% of
      ViT-B/32's work. Keys and values still come from every position.
    - Each layer's query, key and value projections are one MatMul (their weights side by side, so the
      int8 step quantises the layer's input once for all three), and the attention between them one
      `MultiHeadAttention` node (`handler.tools.onnx_attention`), not the ~20 reshapes, transposes,
      MatMuls and Softmax torch.onnx writes for it. Interleaved A/B, 2026-12-02, AMD EPYC, int8: one
      image 5-7% faster, a batch of 32 about 4%.
    - The patch embedding (a convolution whose stride is its kernel) is the same product written as a
      matrix multiply over the image cut into patches, so the int8 step quantises it with the other
      MatMuls (its weights were the only large fp32 ones left: 9 of the int8 tower's 96 MB). Interleaved
      A/B, 2026-12-02: AMD EPYC, batch of 32 290 against 308 ms; Intel with AMX, 180 against 202 ms
      (298 against 318 without AMX), one image 10.95 against 11.30 ms (13.6 against 14.3). `ConvInteger`,
      the other way to quantise it, measured slower than the fp32 convolution.
    """

    def __init__(self, tower: Any) -> None:
        super().__init__()
        vision = tower.vision_model
        self.embeddings = vision.embeddings
        conv = self.embeddings.patch_embedding
        self.patch = int(conv.kernel_size[0])
        self.patch_projection = torch.nn.Linear(
            conv.in_channels * self.patch * self.patch, conv.out_channels, bias=conv.bias is not None
        )
        with torch.no_grad():
            self.patch_projection.weight.copy_(conv.weight.reshape(conv.out_channels, -1))
            if conv.bias is not None:
                self.patch_projection.bias.copy_(conv.bias)
        self.pre_layrnorm = vision.pre_layrnorm
        self.layers = vision.encoder.layers
        *full, last = self.layers
        self.query_key_value = torch.nn.ModuleList(
            _side_by_side(a.q_proj, a.k_proj, a.v_proj) for a in (layer.self_attn for layer in full)
        )
        self.last_key_value = _side_by_side(last.self_attn.k_proj, last.self_attn.v_proj)
        self.post_layernorm = vision.post_layernorm
        self.visual_projection = tower.visual_projection

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`CLIPVisionEmbeddings(pixel_values)`: class token and patches, plus position embeddings."""
        batch, channels, height, width = pixel_values.shape
        p = self.patch
        patches = (
            pixel_values.reshape(batch, channels, height // p, p, width // p, p)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(batch, (height // p) * (width // p), channels * p * p)
        )
        embeddings = self.embeddings
        tokens = torch.cat(
            [embeddings.class_embedding.expand(batch, 1, -1), self.patch_projection(patches)], dim=1
        )
        positioned: torch.Tensor = tokens + embeddings.position_embedding(embeddings.position_ids)
        return positioned

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.pre_layrnorm(self.embed(pixel_values))
        for layer, query_key_value in zip(self.layers[:-1], self.query_key_value, strict=True):
            hidden = _encoder_layer(layer, query_key_value, hidden)
        pooled = self.post_layernorm(_class_token_of_last_layer(self.layers[-1], self.last_key_value, hidden))
        features: torch.Tensor = self.visual_projection(pooled)
        return features


def _side_by_side(*projections: torch.nn.Linear) -> torch.nn.Linear:
    """One Linear computing `projections` at once: outputs concatenated in the order given."""
    width = sum(p.out_features for p in projections)
    merged = torch.nn.Linear(projections[0].in_features, width)
    with torch.no_grad():
        merged.weight.copy_(torch.cat([p.weight for p in projections]))
        merged.bias.copy_(
            torch.cat(
                [p.bias if p.bias is not None else p.weight.new_zeros(p.out_features) for p in projections]
            )
        )
    return merged


def _encoder_layer(layer: Any, query_key_value: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """`CLIPEncoderLayer(hidden)` (no attention mask: the vision tower has none)."""
    attention = layer.self_attn
    query, key, value = query_key_value(layer.layer_norm1(hidden)).split(attention.embed_dim, dim=-1)
    attended = multi_head_attention(query, key, value, attention.num_heads, float(attention.scale))
    hidden = hidden + attention.out_proj(attended)
    out: torch.Tensor = hidden + layer.mlp(layer.layer_norm2(hidden))
    return out


def _class_token_of_last_layer(layer: Any, key_value: torch.nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    """`CLIPEncoderLayer(hidden)[:, 0]`, the query and everything after attention for the class token only."""
    attention = layer.self_attn
    normed = layer.layer_norm1(hidden)
    query = attention.q_proj(normed[:, :1])
    key, value = key_value(normed).split(attention.embed_dim, dim=-1)
    attended = multi_head_attention(query, key, value, attention.num_heads, float(attention.scale))
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
            custom_translation_table=TRANSLATIONS,
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
    """int8 weights per output channel for the MatMul/Gemm layers: all of ViT's weight matrices, the patch
    embedding's too (`PooledImageTower` writes it as a MatMul). Activations are quantised per batch at run
    time, so there is no calibration step to overfit: the photographs only check the result
    (handler/tools/int8_gate.py). The pixels, quantised so, move by about half an 8-bit level.

    `tower` "int8": weights in [-127, 127], for CPUs whose int8 kernels sum products exactly. "int8-w7":
    weights in [-64, 64] (ONNX Runtime's `reduce_range`), so that two products of activations up to 255
    sum to at most 255 * 128 = 32640 and fit the 16 bits that VPMADDUBSW (x86 without VNNI or AMX)
    saturates to: no CPU clips it, for twice the weights' rounding error.
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
