"""Preprocessing in bounded memory: the same pixels as scale-then-crop, for any size, mode and orientation."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageOps

from handler.core.preprocess import PreprocessConfig, model_image, to_pixel_values

CFG = PreprocessConfig(shortest_edge=64, crop_height=64, crop_width=64)
RNG = np.random.default_rng(7)


def reference(image: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """The plain way: RGB on white, scale the short side, crop the centre (what the model always saw)."""
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(cfg.shortest_edge * long / short)
    size = (cfg.shortest_edge, new_long) if width <= height else (new_long, cfg.shortest_edge)
    scaled = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - cfg.crop_width) // 2, (size[1] - cfg.crop_height) // 2
    return scaled.crop((left, top, left + cfg.crop_width, top + cfg.crop_height))


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    bands = {"RGB": 3, "RGBA": 4, "LA": 2, "L": 1}[mode]
    array = RNG.integers(0, 255, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(array[..., 0] if bands == 1 else array, mode=mode)


def smooth(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A photo-like picture: gradients and slow waves (noise makes rounding order visible)."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float64)
    u, v = x / max(size[0], 1), y / max(size[1], 1)
    planes = [127 + 120 * np.sin(2 * np.pi * (k + 1) * (u + 0.7 * v) + k) for k in range(4)]
    array = np.stack(planes, axis=-1).round().astype(np.uint8)
    bands = {"RGB": 3, "RGBA": 4, "LA": 2, "L": 1}[mode]
    return Image.fromarray(array[..., 0] if bands == 1 else array[..., :bands], mode=mode)


def difference(ours: Image.Image, expected: Image.Image) -> int:
    assert ours.size == expected.size
    return int(np.abs(np.asarray(ours, dtype=np.int16) - np.asarray(expected, dtype=np.int16)).max())


MODES = ["RGB", "RGBA", "LA", "L"]


@pytest.mark.parametrize("size", [(96, 128), (300, 80), (64, 64), (65, 300), (640, 480), (1024, 768), (5, 3)])
@pytest.mark.parametrize("mode", MODES)
def test_ordinary_images_get_exactly_the_pixels_they_always_got(size: tuple[int, int], mode: str) -> None:
    image = noise(size, mode)
    assert difference(model_image(image, CFG), reference(image, CFG)) == 0


@pytest.mark.parametrize("seed", range(6))
def test_any_size_gets_exactly_the_pixels_of_scale_then_crop(seed: int) -> None:
    """Sizes on both sides of Pillow's choice of which pass goes first, growing and shrinking (sides 30
    to 400 px: aspect ratios that keep to the exact path, see the banded test for the others)."""
    sizes = np.random.default_rng(seed).integers(30, 400, size=(12, 2))
    for width, height in sizes:
        image = noise((int(width), int(height)))
        assert difference(model_image(image, CFG), reference(image, CFG)) == 0, (width, height)


def test_images_preprocessed_on_many_threads_at_once_each_get_exactly_their_own_pixels() -> None:
    """A batch preprocesses its images on several threads at once: each must still come out as
    scale-then-crop of its own pixels."""
    images = [noise((640, 480)), noise((480, 640), "RGBA"), noise((1000, 300), "L"), smooth((333, 777))]
    expected = [np.asarray(reference(image, CFG)) for image in images]
    work = [i % len(images) for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: np.asarray(model_image(images[i], CFG)), work))
    assert all(np.array_equal(result, expected[i]) for i, result in zip(work, results, strict=True))


@pytest.mark.parametrize("size", [(2000, 3), (3, 2000), (1, 500), (700, 1), (301, 97)])
@pytest.mark.parametrize("mode", MODES)
def test_banded_resampling_matches_scale_then_crop(
    size: tuple[int, int], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("handler.core.preprocess.EXACT_PIXELS", 0)  # every image through the bands
    monkeypatch.setattr("handler.core.preprocess.BAND_PIXELS", 3000)  # and many of them
    image = smooth(size, mode)
    assert difference(model_image(image, CFG), reference(image, CFG)) <= 2


@pytest.mark.parametrize("banded", [False, True], ids=["exact", "banded"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_the_region_as_to_the_whole(
    orientation: int, banded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if banded:
        monkeypatch.setattr("handler.core.preprocess.EXACT_PIXELS", 0)
    image = smooth((150, 90)) if banded else noise((150, 90))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue())))
    assert difference(model_image(image, CFG, orientation), reference(upright, CFG)) <= (2 if banded else 0)


def test_palette_transparency_and_sixteen_bit_tones_survive_banding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("handler.core.preprocess.EXACT_PIXELS", 0)
    monkeypatch.setattr("handler.core.preprocess.BAND_PIXELS", 500)  # many bands on a small image
    palette = Image.new("P", (120, 90), 1)
    palette.putpalette([0, 0, 0] + [200, 10, 10] * 255)
    palette.paste(0, (0, 0, 60, 90))
    palette.info["transparency"] = 0
    assert difference(model_image(palette, CFG), reference(palette, CFG)) <= 2
    deep = Image.fromarray(np.linspace(0, 65535, 120 * 90).reshape(90, 120).astype(np.uint16))
    region = np.asarray(model_image(deep, CFG))
    assert region.max() > 200, "16-bit tones are scaled over the whole image, not clipped per band"


def test_a_region_goes_through_unchanged_and_is_what_the_model_sees() -> None:
    images = [noise((300, 80)), noise((97, 61), "RGBA")]
    regions = [model_image(image, CFG) for image in images]
    assert [r.size for r in regions] == [(64, 64), (64, 64)]
    assert model_image(regions[0], CFG) is regions[0]
    assert np.array_equal(to_pixel_values(regions, CFG), to_pixel_values(images, CFG))


def test_a_resize_larger_than_the_crop_keeps_the_same_centre() -> None:
    cfg = PreprocessConfig(shortest_edge=80, crop_height=64, crop_width=64)
    image = noise((201, 133))
    region = model_image(image, cfg)
    assert region.size == (80, 80)
    assert np.array_equal(to_pixel_values([region], cfg), to_pixel_values([image], cfg))


_PEAK_SCRIPT = textwrap.dedent(
    """
    import io, json, resource, sys
    from PIL import Image
    from handler.core.preprocess import PreprocessConfig
    from handler.inputs.images import ImageLimits, decode_still

    size, mode = json.loads(sys.argv[1])
    buffer = io.BytesIO()
    Image.new(mode, tuple(size), (10, 200, 30, 128)[: len(mode)]).save(buffer, format="PNG")
    data = buffer.getvalue()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    region = decode_still(data, ImageLimits(10**8, 40_000_000), PreprocessConfig())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"size": region.size, "grew_mib": (after - before) / 1024}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("size", "mode", "budget_mib"),
    [((20000, 1), "RGB", 20), ((1, 20000), "RGB", 20), ((4000, 4000), "RGBA", 1.5 * 4000 * 4000 * 4 / 2**20)],
    ids=["20000x1", "1x20000", "4000x4000-rgba"],
)
def test_peak_memory_is_bounded_by_one_decoded_image(
    size: tuple[int, int], mode: str, budget_mib: float
) -> None:
    """Measured in a fresh process (the peak RSS of this one says nothing)."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, json.dumps([size, mode])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["size"] == [224, 224]
    assert result["grew_mib"] < budget_mib, result


def test_every_level_normalises_to_the_float32_arithmetic() -> None:
    """Normalisation is `(level - 255 * mean) / (255 * std)` in float32, bit for bit, for all 256 levels of
    every channel and for each image of a batch."""
    levels = np.arange(CFG.crop_height * CFG.crop_width, dtype=np.int64) % 256
    planes = np.stack([levels, levels[::-1], (levels * 7) % 256], axis=-1).astype(np.uint8)
    image = Image.fromarray(planes.reshape(CFG.crop_height, CFG.crop_width, 3))
    other = Image.fromarray(255 - planes.reshape(CFG.crop_height, CFG.crop_width, 3))
    pixels = to_pixel_values([image, other], CFG)
    for index, picture in enumerate((image, other)):
        array = np.asarray(picture).transpose(2, 0, 1).astype(np.float32)
        shift = np.array([255.0 * m for m in CFG.mean], dtype=np.float32).reshape(3, 1, 1)
        scale = np.array([255.0 * s for s in CFG.std], dtype=np.float32).reshape(3, 1, 1)
        assert np.array_equal(pixels[index], (array - shift) / scale)
    assert pixels.dtype == np.float32
    assert pixels.flags.c_contiguous
