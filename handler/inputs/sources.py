"""Where request images come from: an upload, a URL, base64 text, or an S3 object. Bytes out, limits in."""

from __future__ import annotations

import base64
import binascii
from typing import Any, BinaryIO

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


def from_s3(bucket: str, key: str, version_id: str | None, settings: Settings, client: Any = None) -> bytes:
    """An object (a given version) for the operator's tools, after HeadObject shows it is within limits.
    (The API's `s3` source goes through `handler.s3.api_access`, which adds the bucket allowlist.)"""
    from botocore.exceptions import ClientError

    from handler.s3 import objects
    from handler.s3.client import get_s3_client
    from handler.s3.events import ObjectRef
    from handler.s3.faults import error_code

    s3 = client or get_s3_client()
    ref = ObjectRef(bucket, key, version_id)
    try:
        check_size(objects.size_of(s3, ref), settings.max_image_bytes)
        return objects.read_body(s3, ref)
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchKey", "NoSuchVersion", "NoSuchBucket", "403", "AccessDenied"):
            raise InputError(f"cannot read s3://{bucket}/{key}: {code}", status_code=400) from exc
        raise
