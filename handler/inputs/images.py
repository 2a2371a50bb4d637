"""Image input: bytes in, one RGB PIL image out, within byte and pixel limits."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from handler.exceptions import InputError, PayloadTooLarge

# Pillow's own bomb check stays on as a second line of defence; ours is stricter and runs first.
_WHITE = (255, 255, 255)
_IMAGE_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"WEBP", 8, "webp"),
    (b"ftypavif", 4, "avif"),
    (b"ftypheic", 4, "heic"),
    (b"\x00\x00\x01\x00", 0, "ico"),
)


def sniff_image_format(head: bytes) -> str | None:
    """The image format named by the file's magic number, or None. Needs the first 16 bytes."""
    for magic, offset, name in _IMAGE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if name == "webp" and head[:4] != b"RIFF":
                continue
            return name
    return None


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"image is {size} bytes; the limit is {limit} bytes (MAX_IMAGE_BYTES)")


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, draft: tuple[int, int] | None = None
) -> Image.Image:
    """Decode any Pillow-readable image to RGB: first frame, EXIF orientation applied, alpha on white.

    `draft` lets JPEGs decode straight at a reduced scale that still covers that size (much faster).
    """
    if not data:
        raise InputError("the image is empty (0 bytes)")
    check_size(len(data), max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"image is {width}x{height} = {width * height} pixels; "
                    f"the limit is {max_pixels} (MAX_IMAGE_PIXELS)"
                )
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", draft)
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"image has too many pixels to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InputError("the data is not an image in any format Pillow can read") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"the image could not be decoded (truncated or corrupt): {exc}") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a 16-bit or float single-channel array to 0..255 instead of clipping it."""
    array = array.astype(np.float64)
    top = float(array.max()) if array.size else 0.0
    scale = 255.0 if top <= 255.0 else 65535.0 if top <= 65535.0 else top
    scaled: np.ndarray = np.clip(array * (255.0 / scale), 0, 255).astype(np.uint8)
    return scaled
