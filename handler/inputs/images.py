"""Image input: untrusted bytes in, a small model-sized RGB image out, within byte and pixel limits.

One rule for every decode of user bytes (`decoding`): any exception is an InputError naming the format,
never a 500; pixel bombs are PayloadTooLarge; Pillow's warnings about broken data are logged, once each.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from handler.core.preprocess import PreprocessConfig, model_image
from handler.exceptions import InputError, PayloadTooLarge
from handler.logs import log_decision
from handler.settings import Settings

logger = logging.getLogger(__name__)
Image.init()  # Pillow's own plugins first (its AVIF reader among them), then HEIF/HEIC (phone photos)
register_heif_opener()

_EXIF_ORIENTATION = 0x0112
#: ISO BMFF major brands of HEIF/AVIF images (sequences and bursts included: `msf1`, `avis`, `hevc`).
HEIF_BRANDS = {
    b"avif": "avif",
    b"avis": "avif",
    b"heic": "heic",
    b"heix": "heic",
    b"heim": "heic",
    b"heis": "heic",
    b"hevc": "heic",
    b"hevx": "heic",
    b"mif1": "heif",
    b"msf1": "heif",
}
_IMAGE_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"WEBP", 8, "webp"),
    (b"\x00\x00\x01\x00", 0, "ico"),
)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(settings.max_image_bytes, settings.max_image_pixels)


def sniff_image_format(head: bytes) -> str | None:
    """The image format named by the file's magic number, or None. Needs the first 16 bytes (32 to tell
    a `mif1`/`msf1` file's codec from its compatible brands)."""
    if head[4:8] == b"ftyp":
        name = HEIF_BRANDS.get(bytes(head[8:12]))
        if name == "heif":  # the generic brands: the compatible brands say which codec
            compatible = head[16 : min(len(head), int.from_bytes(head[:4], "big"))]
            brands = {bytes(compatible[i : i + 4]) for i in range(0, len(compatible) - 3, 4)}
            name = "avif" if brands & {b"avif", b"avis"} else "heic" if brands & {b"heic", b"heix"} else name
        return name
    for magic, offset, name in _IMAGE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if name == "webp" and head[:4] != b"RIFF":
                continue
            return name
    return None


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"image is {size} bytes; the limit is {limit} bytes (MAX_IMAGE_BYTES)")


def check_pixels(width: int, height: int, limit: int, what: str = "image") -> None:
    if width * height > limit:
        raise PayloadTooLarge(
            f"{what} is {width}x{height} = {width * height} pixels; the limit is {limit} (MAX_IMAGE_PIXELS)"
        )


@contextmanager
def decoding(name: str | Callable[[], str]) -> Iterator[None]:
    """Run untrusted decoding: every exception becomes an InputError naming `what` (e.g. "png image").

    `name` may be a function, called only when it is needed (naming a format can take a look-up).
    """
    what = _Lazy(name)
    caught: list[str] = []
    outer, _collecting.sink = getattr(_collecting, "sink", None), caught
    try:
        yield
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"the {what} has too many pixels to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InputError("the data is not an image in any format Pillow can read") from exc
    except MemoryError as exc:
        raise PayloadTooLarge(f"the {what} needs more memory to decode than this service has") from exc
    except Exception as exc:  # any failure on user bytes is the input's fault
        raise InputError(
            f"the {what} could not be decoded (corrupt, truncated or unsupported): {exc}"
        ) from exc
    finally:
        _collecting.sink = outer
    if caught:
        log_decision(logger, event="decode_warning", what=str(what), warnings=sorted(set(caught)))


# Warnings while decoding: thread-safe (warnings.catch_warnings is not, and batches decode in threads).
# Set once: Pillow's pixel-bomb warning is an error; its other warnings (broken data) are never
# deduplicated away and, inside `decoding`, go to that call's log line instead of stderr.
_collecting = threading.local()
_show_warning = warnings.showwarning


def _collect_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    sink: list[str] | None = getattr(_collecting, "sink", None)
    if sink is None:
        _show_warning(message, category, filename, lineno, file, line)
    else:
        sink.append(str(message))


warnings.showwarning = _collect_warning
warnings.filterwarnings("always", module=r"PIL\.")
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class _Lazy:
    def __init__(self, name: str | Callable[[], str]) -> None:
        self.name = name

    def __str__(self) -> str:
        if callable(self.name):
            self.name = self.name()
        return self.name


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Open (not decode) an image within the byte and pixel limits. Call inside `decoding`."""
    if not data:
        raise InputError("the image is empty (0 bytes)")
    check_size(len(data), limits.max_bytes)
    image = Image.open(io.BytesIO(data))
    check_pixels(*image.size, limits.max_pixels)
    return image


def format_name(image: Image.Image | None, data: bytes) -> str:
    """How messages name the format: Pillow's name once it opened, else the magic number's, else 'image'."""
    name = image.format if image is not None and image.format else sniff_image_format(data[:16])
    name = name or _pillow_format(data[:64])
    return f"{name.lower()} image" if name else "image"


def _pillow_format(head: bytes) -> str | None:
    """The first Pillow plugin that claims these bytes (it may still fail to open them)."""
    Image.init()
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        try:
            if accept is not None and accept(head):
                return name
        except Exception:  # a plugin's check choking on odd bytes claims nothing
            continue
    return None


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of a still; 1 when it has none or an invalid one."""
    value = image.getexif().get(_EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def decode_still(data: bytes, limits: ImageLimits, cfg: PreprocessConfig) -> Image.Image:
    """Any Pillow-readable image (its first frame) -> the model-sized RGB region `model_image` gives.

    EXIF orientation applied, transparency on white; JPEGs decode at a reduced scale that still covers
    the model's input (much faster). Peak memory: one decoded image plus the model-sized result.
    """
    with decoding(lambda: format_name(None, data)):
        image = open_image(data, limits)
    with decoding(lambda: format_name(image, data)), image:
        if image.format == "JPEG":
            image.draft("RGB", cfg.draft_size)
        image.load()
        return model_image(image, cfg, orientation(image))
