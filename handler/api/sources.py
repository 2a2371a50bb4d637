"""Image sources named in a request, read lazily (inside a worker thread) with the service's limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from handler.api.schemas import ImageSourceJSON
from handler.inputs.sources import from_base64, from_s3, from_url, read_upload
from handler.settings import Settings

Kind = Literal["upload", "url", "base64", "s3"]


@dataclass(frozen=True)
class ImageSource:
    kind: Kind
    value: Any
    label: str

    @classmethod
    def upload(cls, stream: BinaryIO, filename: str | None) -> ImageSource:
        return cls("upload", stream, filename or "upload")

    @classmethod
    def url(cls, url: str) -> ImageSource:
        return cls("url", url, url)

    @classmethod
    def from_json(cls, item: ImageSourceJSON) -> ImageSource:
        if item.url is not None:
            return cls.url(item.url)
        if item.image_base64 is not None:
            return cls("base64", item.image_base64, "base64")
        assert item.s3 is not None  # the model's validator guarantees exactly one source
        return cls("s3", item.s3, f"s3://{item.s3.bucket}/{item.s3.key}")

    def read(self, settings: Settings) -> bytes:
        if self.kind == "upload":
            return read_upload(self.value, settings)
        if self.kind == "url":
            return from_url(self.value, settings)
        if self.kind == "base64":
            return from_base64(self.value, settings)
        ref = self.value
        return from_s3(ref.bucket, ref.key, ref.version_id, settings)
