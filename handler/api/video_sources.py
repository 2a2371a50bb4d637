"""A request's video, read lazily (inside a worker thread) in chunks within MAX_VIDEO_BYTES."""

from __future__ import annotations

from collections.abc import Iterator

from handler.api.sources import RequestSource
from handler.settings import Settings
from handler.video.inputs import base64_chunks, stream_chunks, too_large


def video_chunks(source: RequestSource, settings: Settings) -> Iterator[bytes]:
    limit = settings.max_video_bytes
    if source.kind == "upload":
        return stream_chunks(source.value)
    if source.kind == "url":
        return _fetch(source.value, settings)
    if source.kind == "base64":
        return base64_chunks(source.value, limit)
    from handler.s3 import api_access
    from handler.s3.events import ObjectRef

    ref = source.value
    return api_access.open_stream(ObjectRef(ref.bucket, ref.key, ref.version_id), settings, limit, too_large)


def _fetch(url: str, settings: Settings) -> Iterator[bytes]:
    from handler.inputs.fetch import fetch_url

    yield fetch_url(url, settings, max_bytes=settings.max_video_bytes)
