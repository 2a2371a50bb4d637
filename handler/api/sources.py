"""What a request names as its media: an upload, a URL, base64 text or an S3 object, one type each.

Every source reads lazily, inside a worker thread, within the service's limits: `read_image` the whole
bytes of an image (MAX_IMAGE_BYTES), `video_chunks` a video streamed in chunks (MAX_VIDEO_BYTES, which
the temporary file it goes to enforces too). The S3 source reads only buckets on API_S3_BUCKETS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from handler.api.schemas import S3Reference
from handler.inputs.sources import from_base64, from_url, read_upload
from handler.s3 import api_access
from handler.s3.events import ObjectRef
from handler.settings import Settings
from handler.video.inputs import base64_chunks, stream_chunks, too_large


class Source(Protocol):
    @property
    def label(self) -> str:
        """How logs name the source (a file name, the URL, `base64`, `s3://bucket/key`)."""
        ...

    def read_image(self, settings: Settings) -> bytes: ...

    def video_chunks(self, settings: Settings) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class Upload:
    stream: BinaryIO
    filename: str | None = None

    @property
    def label(self) -> str:
        return self.filename or "upload"

    def read_image(self, settings: Settings) -> bytes:
        return read_upload(self.stream, settings)

    def video_chunks(self, settings: Settings) -> Iterator[bytes]:
        return stream_chunks(self.stream)


@dataclass(frozen=True)
class Url:
    url: str

    @property
    def label(self) -> str:
        return self.url

    def read_image(self, settings: Settings) -> bytes:
        return from_url(self.url, settings)

    def video_chunks(self, settings: Settings) -> Iterator[bytes]:
        from handler.inputs.fetch import fetch_url

        yield fetch_url(self.url, settings, max_bytes=settings.max_video_bytes)


@dataclass(frozen=True)
class Base64Text:
    text: str

    @property
    def label(self) -> str:
        return "base64"

    def read_image(self, settings: Settings) -> bytes:
        return from_base64(self.text, settings)

    def video_chunks(self, settings: Settings) -> Iterator[bytes]:
        return base64_chunks(self.text, settings.max_video_bytes)


@dataclass(frozen=True)
class S3Object:
    ref: ObjectRef

    @property
    def label(self) -> str:
        return f"s3://{self.ref.bucket}/{self.ref.key}"

    def read_image(self, settings: Settings) -> bytes:
        return self.read_version(settings)[0]

    def read_version(self, settings: Settings) -> tuple[bytes, ObjectRef, str | None]:
        """The bytes, the exact version they came from and its ETag (for the decision record)."""
        return api_access.read_image(self.ref, settings, settings.max_image_bytes)

    def video_chunks(self, settings: Settings) -> Iterator[bytes]:
        return api_access.open_stream(self.ref, settings, settings.max_video_bytes, too_large)


def from_fields(url: str | None, base64_text: str | None, s3: S3Reference | None) -> Source:
    """The one source a JSON body gave (its model's validator guarantees exactly one)."""
    if url is not None:
        return Url(url)
    if base64_text is not None:
        return Base64Text(base64_text)
    assert s3 is not None
    return S3Object(ObjectRef(s3.bucket, s3.key, s3.version_id))
