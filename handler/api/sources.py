"""What a request names as its media (an upload, a URL, base64 text or an S3 object), read lazily inside
a worker thread with the service's limits. Images read whole; videos stream (handler.api.video_sources)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from handler.api.schemas import S3Reference
from handler.inputs.sources import from_base64, from_url, read_upload
from handler.s3 import api_access
from handler.s3.events import ObjectRef
from handler.settings import Settings

Kind = Literal["upload", "url", "base64", "s3"]


@dataclass(frozen=True)
class RequestSource:
    kind: Kind
    value: Any
    label: str

    @classmethod
    def upload(cls, stream: BinaryIO, filename: str | None) -> RequestSource:
        return cls("upload", stream, filename or "upload")

    @classmethod
    def url(cls, url: str) -> RequestSource:
        return cls("url", url, url)

    @classmethod
    def from_fields(cls, url: str | None, base64_text: str | None, s3: S3Reference | None) -> RequestSource:
        """The one source a JSON body gave (its model's validator guarantees exactly one)."""
        if url is not None:
            return cls.url(url)
        if base64_text is not None:
            return cls("base64", base64_text, "base64")
        assert s3 is not None
        return cls("s3", s3, f"s3://{s3.bucket}/{s3.key}")

    def read_image(self, settings: Settings) -> bytes:
        if self.kind == "upload":
            return read_upload(self.value, settings)
        if self.kind == "url":
            return from_url(self.value, settings)
        if self.kind == "base64":
            return from_base64(self.value, settings)
        ref = self.value
        return api_access.read_image(
            ObjectRef(ref.bucket, ref.key, ref.version_id), settings, settings.max_image_bytes
        )
