"""The API's `s3` source: only buckets on the API_S3_BUCKETS allowlist, and one uniform 403 otherwise.

A caller must not learn which keys exist where it may not read: a bucket off the list, a missing key or
version, and a bucket the function's role cannot read all answer the same status and the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from handler.exceptions import InputError
from handler.s3 import objects
from handler.s3.client import get_s3_client
from handler.s3.events import ObjectRef
from handler.s3.faults import error_code, is_gone
from handler.settings import Settings

T = TypeVar("T")
_DENIED_CODES = frozenset({"403", "AccessDenied", "NoSuchBucket", "AllAccessDisabled", "InvalidBucketName"})


class S3SourceDenied(InputError):
    status_code = 403


def denied(ref: ObjectRef) -> S3SourceDenied:
    return S3SourceDenied(
        f"s3://{ref.bucket}/{ref.key} cannot be read: no such object, or not in a bucket this API may read "
        "(API_S3_BUCKETS)"
    )


def _guarded(ref: ObjectRef, settings: Settings, read: Callable[[], T]) -> T:
    from botocore.exceptions import ClientError

    if ref.bucket not in settings.api_s3_buckets:
        raise denied(ref)
    try:
        return read()
    except ClientError as exc:
        if is_gone(exc) or error_code(exc) in _DENIED_CODES:
            raise denied(ref) from exc
        raise


def read_image(
    ref: ObjectRef, settings: Settings, limit: int, client: Any = None
) -> tuple[bytes, ObjectRef, str | None]:
    """The object's bytes, after HeadObject shows it is within `limit` (PayloadTooLarge past it), with the
    exact version read and its ETag."""
    s3 = client or get_s3_client()
    return _guarded(ref, settings, lambda: objects.read_limited(s3, ref, limit))


def open_stream(
    ref: ObjectRef,
    settings: Settings,
    limit: int,
    too_large: Callable[[int, int], InputError],
    client: Any = None,
) -> Iterator[bytes]:
    """The object's body in chunks (videos), after its size is checked against `limit`."""
    s3 = client or get_s3_client()

    def open_body() -> Iterator[bytes]:
        size = objects.size_of(s3, ref)
        if size > limit:
            raise too_large(size, limit)
        return objects.body_chunks(s3, ref)

    return _guarded(ref, settings, open_body)
