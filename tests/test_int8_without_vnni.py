"""The int8 towers on an x86 CPU without VNNI or AVX-512 (AVX2 only), with ONNX Runtime's own kernels.

ONNX Runtime picks its int8 kernels from CPUID when it loads, so such a CPU can be had on any x86_64
machine: the same Python under qemu-user with `-cpu Haswell` runs the very kernels an AVX2 host runs
(VPMADDUBSW, which adds pairs of u8 x s8 products into 16 bits with saturation), slowly. `.ci/run`
installs Debian's qemu-user; without it these tests skip, saying so.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handler.core.cpu import int8_products_exact
from handler.core.onnx_runtime import load_image_tower
from handler.core.preprocess import PreprocessConfig, to_pixel_values
from handler.core.vectors import unit
from handler.tools.int8_gate import skimage_photographs

QEMU = shutil.which("qemu-x86_64")
TOWERS = ("int8", "int8-w7")
CHILD = """
import sys
import numpy as np
from pathlib import Path
from handler.core.onnx_runtime import load_image_tower
model_dir, pixels, out = Path(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
np.savez(out, **{tower: load_image_tower(model_dir, tower, 1)(pixels) for tower in sys.argv[4:]})
"""


@pytest.fixture(scope="module")
def on_an_avx2_cpu(baked: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Each int8 tower's embeddings of a white image and four photographs, computed by an AVX2 CPU."""
    if platform.machine() != "x86_64" or QEMU is None:
        pytest.skip("needs x86_64 and qemu-x86_64 (apt-get install qemu-user) to stand for an AVX2 CPU")
    folder = tmp_path_factory.mktemp("avx2")
    images = [Image.new("RGB", (64, 64), (255, 255, 255)), *skimage_photographs()[:4]]
    np.save(folder / "pixels.npy", to_pixel_values(images, PreprocessConfig.from_model_dir(baked)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.run(
        [QEMU, "-cpu", "Haswell", sys.executable, "-c", CHILD, str(baked), str(folder / "pixels.npy"),
         str(folder / "out.npz"), *TOWERS],
        env=env, timeout=300, capture_output=True, text=True,
    )  # fmt: skip
    assert child.returncode == 0, f"the towers under qemu-x86_64 -cpu Haswell failed:\n{child.stderr[-2000:]}"
    with np.load(folder / "out.npz") as out:
        return {"pixels": np.load(folder / "pixels.npy"), **{tower: out[tower] for tower in TOWERS}}


@pytest.mark.slow
def test_the_7_bit_tower_answers_on_an_avx2_cpu_as_on_this_one(
    baked: Path, on_an_avx2_cpu: dict[str, np.ndarray]
) -> None:
    here = unit(load_image_tower(baked, "int8-w7", 1)(on_an_avx2_cpu["pixels"]))
    there = unit(on_an_avx2_cpu["int8-w7"])

    assert (here * there).sum(axis=1).min() >= 0.99999


@pytest.mark.slow
def test_the_8_bit_tower_is_clipped_by_an_avx2_cpu(
    baked: Path, on_an_avx2_cpu: dict[str, np.ndarray]
) -> None:
    """Why `auto` serves the 7-bit tower on such CPUs (`handler.core.cpu.int8_products_exact`); also the
    proof that the emulated CPU really runs the kernels that saturate (else the test above proves nothing)."""
    if not int8_products_exact():
        pytest.skip("this CPU clips the 8-bit tower too: nothing to compare the AVX2 one against")
    here = unit(load_image_tower(baked, "int8", 1)(on_an_avx2_cpu["pixels"]))
    there = unit(on_an_avx2_cpu["int8"])

    assert (here * there).sum(axis=1).min() < 0.999
