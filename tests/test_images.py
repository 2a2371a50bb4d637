"""Image input: every Pillow format, modes, orientation, and hostile files; through the API and directly."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from handler.core.moderator import Moderator
from handler.core.preprocess import PreprocessConfig
from handler.exceptions import InputError, PayloadTooLarge
from handler.inputs.images import ImageLimits, decode_still, sniff_image_format
from tests.conftest import image_bytes

LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)
CFG = PreprocessConfig(shortest_edge=64, crop_height=64, crop_width=64)


def decode(data: bytes, limits: ImageLimits = LIMITS) -> Image.Image:
    return decode_still(data, limits, CFG)


def encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions (a decompression bomb's calling card)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "ICO", "PPM", "TGA"])
def test_common_formats_decode_to_rgb(fmt: str) -> None:
    source = Image.new("RGB", (64, 48), (10, 200, 30))
    image = decode(encode(source, fmt))
    assert image.mode == "RGB"
    assert image.size == (64, 64), "the model-sized centre region"
    assert image.getpixel((32, 32)) == pytest.approx((10, 200, 30), abs=8)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    array = np.full((32, 32), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    data = encode(Image.fromarray(array), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    pixel = decode(data).getpixel((0, 0))
    assert pixel == (127, 127, 127) or pixel == (128, 128, 128)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG")
    image = decode(data)
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((20, 20))  # type: ignore[misc]
    assert red > 200
    assert green < 60
    assert blue < 60


def test_palette_gif_with_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    data = encode(image, "GIF", transparency=0)
    assert decode(data).getpixel((5, 5)) == (255, 255, 255)


def test_rgba_png_alpha_is_composited_on_white() -> None:
    data = encode(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), "PNG")
    assert decode(data).getpixel((0, 0)) == (255, 255, 255)


def test_still_decoding_of_an_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in [(255, 0, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    red, _green, blue = decode(data).getpixel((8, 8))  # type: ignore[misc]
    assert red > 200
    assert blue < 50


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display: the stored left half shows on top
    stored = Image.new("RGB", (80, 40), (250, 0, 0))
    stored.paste((0, 0, 250), (40, 0, 80, 40))
    image = decode(encode(stored, "PNG", exif=exif))
    assert image.getpixel((32, 4)) == pytest.approx((250, 0, 0), abs=10)
    assert image.getpixel((32, 60)) == pytest.approx((0, 0, 250), abs=10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, I am plain text and not an image at all", "not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
        (image_bytes("JPEG")[:200], "jpeg image could not be decoded"),
        (image_bytes("PNG")[:60], "png image could not be decoded"),
    ],
    ids=["zero-bytes", "text", "svg", "truncated-jpeg", "truncated-png"],
)
def test_undecodable_input_is_an_input_error_naming_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        decode(data)
    assert info.value.status_code == 400


def test_huge_declared_dimensions_are_refused_before_decoding() -> None:
    with pytest.raises(PayloadTooLarge, match="pixels") as info:
        decode(png_with_declared_size(100_000, 100_000))
    assert info.value.status_code == 413


def test_decompression_bomb_within_the_byte_limit_is_refused() -> None:
    bomb = encode(Image.new("L", (10_000, 10_000), 0), "PNG")  # ~100 kB compressed, 100 MP decoded
    assert len(bomb) < 1_000_000
    with pytest.raises(PayloadTooLarge):
        decode(bomb)


def test_byte_limit_is_enforced() -> None:
    with pytest.raises(PayloadTooLarge, match="bytes"):
        decode(image_bytes("PNG"), ImageLimits(max_bytes=100, max_pixels=10**8))


def test_magic_numbers_identify_images_regardless_of_names() -> None:
    assert sniff_image_format(image_bytes("JPEG")[:16]) == "jpeg"
    assert sniff_image_format(image_bytes("PNG")[:16]) == "png"
    assert sniff_image_format(image_bytes("WEBP")[:16]) == "webp"
    assert sniff_image_format(b"%PDF-1.7 something") is None


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"just text", 400),
        (image_bytes("JPEG")[:300], 400),
        (png_with_declared_size(60_000, 60_000), 413),
    ],
    ids=["empty", "text", "truncated", "bomb"],
)
def test_api_maps_bad_images_to_4xx_with_detail(client: TestClient, data: bytes, status: int) -> None:
    for path in ("/classify/", "/v1/moderate"):
        response = client.post(path, files={"image": ("x.jpg", data, "image/jpeg")})
        assert response.status_code == status, (path, response.text)
        assert response.json()["detail"]


def test_api_refuses_uploads_over_the_byte_limit_with_413(
    client: TestClient,
    make_moderator: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
) -> None:
    override_moderator(make_moderator(max_image_bytes=2000))
    noise = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    big = encode(Image.fromarray(noise), "PNG")
    assert len(big) > 2000
    response = client.post("/classify/", files={"image": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert "2000" in response.json()["detail"]


def ico_with_a_wrong_size_in_its_directory() -> bytes:
    """Decodes, with Pillow's warning 'Image was not the expected size' (broken data)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 0, 0)).save(buffer, format="ICO", sizes=[(64, 64)])
    data = bytearray(buffer.getvalue())
    data[6], data[7] = 32, 32  # the directory claims 32x32
    return bytes(data)


@pytest.mark.slow
def test_pillow_warnings_about_broken_data_go_to_one_log_line(tmp_path: Path) -> None:
    """In a fresh process (pytest replaces the warning machinery in its own)."""
    import subprocess
    import sys

    path = tmp_path / "broken.ico"
    path.write_bytes(ico_with_a_wrong_size_in_its_directory())
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
        "from pathlib import Path; from handler.core.preprocess import PreprocessConfig; "
        "from handler.inputs.images import ImageLimits, decode_still; "
        f"data = Path({str(path)!r}).read_bytes(); "
        "print(decode_still(data, ImageLimits(10**7, 10**8), PreprocessConfig()).size)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "(224, 224)" in result.stdout
    assert "decode_warning" in result.stdout
    assert "Image was not the expected size" in result.stdout
    assert "UserWarning" not in result.stderr, "nothing escapes to stderr"


def test_decoding_in_threads_leaves_the_warning_machinery_as_it_was() -> None:
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    before = (warnings.showwarning, list(warnings.filters))
    data = ico_with_a_wrong_size_in_its_directory()
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda _: decode(data).size, range(64)))
    assert sizes == [(64, 64)] * 64
    assert (warnings.showwarning, list(warnings.filters)) == before
