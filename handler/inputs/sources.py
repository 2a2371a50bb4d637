"""Where request images come from: an upload, a URL, base64 text, or an S3 object. Bytes out, limits in."""

from __future__ import annotations

import base64
import binascii
from typing import BinaryIO

from handler.exceptions import InputError
from handler.inputs.images import check_size
from handler.settings import Settings

_CHUNK = 1024 * 1024


def read_upload(stream: BinaryIO, settings: Settings) -> bytes:
    """Read an uploaded file, stopping as soon as it passes MAX_IMAGE_BYTES."""
    limit = settings.max_image_bytes
    chunks, total = [], 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        check_size(total, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def from_url(url: str, settings: Settings) -> bytes:
    from handler.inputs.fetch import fetch_url

    data: bytes = fetch_url(url, settings)
    return data


def from_base64(text: str, settings: Settings) -> bytes:
    if text.startswith("data:"):  # accept data URLs as browsers produce them
        _, _, text = text.partition(",")
    check_size(len(text) * 3 // 4, settings.max_image_bytes)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"image_base64 is not valid base64: {exc}") from exc
