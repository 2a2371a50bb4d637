"""Video bytes into a temporary file (PyAV reads seekable files), streamed and cut off at a byte limit.

The file lives in the system temporary directory (`/tmp` on Lambda, 512 MB by default, above the
200 MiB MAX_VIDEO_BYTES) and is deleted when the `with` block ends, whatever happened inside it.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from handler.exceptions import InputError, PayloadTooLarge
from handler.inputs.images import sniff_image_format
from handler.video.formats import VIDEO_SNIFF_BYTES
from handler.video.judge import media_kind

CHUNK_BYTES = 1024 * 1024


def too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"video is {size} bytes or more; the limit is {limit} bytes (MAX_VIDEO_BYTES)")


@contextmanager
def spooled(chunks: Iterable[bytes], limit: int) -> Iterator[Path]:
    """The chunks written to a new temporary file, at most `limit` bytes (PayloadTooLarge past it)."""
    fd, name = tempfile.mkstemp(prefix=SPOOL_PREFIX)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            total = 0
            for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise too_large(total, limit)
                out.write(chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)


def head_of(path: Path) -> bytes:
    """The file's first bytes, enough to sniff its format."""
    with path.open("rb") as file:
        return file.read(VIDEO_SNIFF_BYTES)


def stream_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def base64_chunks(text: str, limit: int) -> Iterator[bytes]:
    """Decoded base64 (a data: URL too), refused before decoding when it would be over `limit`."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    if len(text) * 3 // 4 > limit:
        raise too_large(len(text) * 3 // 4, limit)
    try:
        yield base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"video_base64 is not valid base64: {exc}") from exc


SPOOL_PREFIX = "moderation-video-"


def remove_stale_spools() -> int:
    """Delete spooled videos left in the temporary directory (a timed-out invocation cannot clean up:
    Lambda freezes it mid-`with`). Called at init, before this sandbox serves anything. Returns how many."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def video_kind(head: bytes) -> str:
    """The sniffed container (or gif/webp), or a 4xx saying what the bytes are instead."""
    if not head:
        raise InputError("the video is empty (0 bytes)")
    kind = media_kind(head)
    if kind is not None:
        return kind
    image = sniff_image_format(head)
    if image is not None:
        raise InputError(f"this is a still {image} image, not a video: send it to POST /v1/moderate", 415)
    raise InputError(
        "not a video: no MP4, MOV, WebM, Matroska, AVI or MPEG-TS signature (nor an animated GIF or WebP)",
        status_code=415,
    )
