"""Image input: every Pillow format, modes, orientation, and hostile files; through the API and directly."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from handler.core.moderator import Moderator
from handler.exceptions import InputError, PayloadTooLarge
from handler.inputs.images import decode_image, sniff_image_format
from tests.conftest import image_bytes

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}


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
    image = decode_image(encode(source, fmt), **LIMITS)
    assert image.mode == "RGB"
    assert image.size[0] * 3 == image.size[1] * 4  # ICO picks its own largest size, same aspect


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    array = np.full((32, 32), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    data = encode(Image.fromarray(array), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    pixel = decode_image(data, **LIMITS).getpixel((0, 0))
    assert pixel == (127, 127, 127) or pixel == (128, 128, 128)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG")
    image = decode_image(data, **LIMITS)
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((20, 20))  # type: ignore[misc]
    assert red > 200
    assert green < 60
    assert blue < 60


def test_palette_gif_with_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    data = encode(image, "GIF", transparency=0)
    assert decode_image(data, **LIMITS).getpixel((5, 5)) == (255, 255, 255)


def test_rgba_png_alpha_is_composited_on_white() -> None:
    data = encode(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), "PNG")
    assert decode_image(data, **LIMITS).getpixel((0, 0)) == (255, 255, 255)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in [(255, 0, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    red, _green, blue = decode_image(data, **LIMITS).getpixel((8, 8))  # type: ignore[misc]
    assert red > 200
    assert blue < 50


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = encode(Image.new("RGB", (80, 40), (0, 0, 0)), "JPEG", exif=exif)
    assert decode_image(data, **LIMITS).size == (40, 80)


def test_jpeg_draft_mode_decodes_at_reduced_scale_but_covers_the_target() -> None:
    data = encode(Image.new("RGB", (2048, 1536), (9, 9, 9)), "JPEG")
    image = decode_image(data, draft=(224, 224), **LIMITS)
    assert min(image.size) >= 224
    assert image.size[0] < 2048


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, I am plain text and not an image at all", "not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
        (image_bytes("JPEG")[:200], "truncated or corrupt"),
        (image_bytes("PNG")[:60], "truncated or corrupt"),
    ],
    ids=["zero-bytes", "text", "svg", "truncated-jpeg", "truncated-png"],
)
def test_undecodable_input_is_an_input_error_naming_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        decode_image(data, **LIMITS)
    assert info.value.status_code == 400


def test_huge_declared_dimensions_are_refused_before_decoding() -> None:
    with pytest.raises(PayloadTooLarge, match="pixels") as info:
        decode_image(png_with_declared_size(100_000, 100_000), **LIMITS)
    assert info.value.status_code == 413


def test_decompression_bomb_within_the_byte_limit_is_refused() -> None:
    bomb = encode(Image.new("L", (10_000, 10_000), 0), "PNG")  # ~100 kB compressed, 100 MP decoded
    assert len(bomb) < 1_000_000
    with pytest.raises(PayloadTooLarge):
        decode_image(bomb, **LIMITS)


def test_byte_limit_is_enforced() -> None:
    with pytest.raises(PayloadTooLarge, match="bytes"):
        decode_image(image_bytes("PNG"), max_bytes=100, max_pixels=10**8)


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
