"""Video sources named in a request, read lazily (inside a worker thread) in chunks within MAX_VIDEO_BYTES."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from handler.api.video_schemas import VideoJSONRequest
from handler.settings import Settings
from handler.video.inputs import base64_chunks, s3_chunks, stream_chunks

Kind = Literal["upload", "url", "base64", "s3"]


@dataclass(frozen=True)
class VideoSource:
    kind: Kind
    value: Any
    label: str

    @classmethod
    def upload(cls, stream: BinaryIO, filename: str | None) -> VideoSource:
        return cls("upload", stream, filename or "upload")

    @classmethod
    def url(cls, url: str) -> VideoSource:
        return cls("url", url, url)

    @classmethod
    def from_json(cls, body: VideoJSONRequest) -> VideoSource:
        if body.url is not None:
            return cls.url(body.url)
        if body.video_base64 is not None:
            return cls("base64", body.video_base64, "base64")
        assert body.s3 is not None  # the model's validator guarantees exactly one source
        return cls("s3", body.s3, f"s3://{body.s3.bucket}/{body.s3.key}")

    def chunks(self, settings: Settings) -> Iterator[bytes]:
        limit = settings.max_video_bytes
        if self.kind == "upload":
            return stream_chunks(self.value)
        if self.kind == "url":
            return self._fetch(settings)
        if self.kind == "base64":
            return base64_chunks(self.value, limit)
        from handler.s3.client import get_s3_client

        ref = self.value
        return s3_chunks(get_s3_client(), ref.bucket, ref.key, ref.version_id, limit)

    def _fetch(self, settings: Settings) -> Iterator[bytes]:
        from handler.inputs.fetch import fetch_url

        yield fetch_url(self.value, settings, max_bytes=settings.max_video_bytes)
