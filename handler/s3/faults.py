"""Telling AWS errors apart: an object that is gone, a fault worth retrying, or a real problem."""

from __future__ import annotations

from typing import Any

# S3 answers HEAD without a body, so a missing object or version is just "404"; a version id that
# names a delete marker answers 405.
_GONE_CODES = frozenset({"404", "NoSuchKey", "NoSuchVersion", "405", "MethodNotAllowed"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "OperationAborted",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)


def error_code(exc: BaseException) -> str:
    """The service's error code of a botocore ClientError, else ""."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int | None:
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def is_gone(exc: BaseException) -> bool:
    """The object (or that version of it) does not exist."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and error_code(exc) in _GONE_CODES


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, timeouts and dropped connections: retrying later may well succeed."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if getattr(exc, "transient", False):
        return True
    if isinstance(exc, ConnectionError | HTTPClientError):  # endpoint unreachable, read/connect timeouts
        return True
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return error_code(exc) in _TRANSIENT_CODES or (
            status is not None and (status >= 500 or status == 429)
        )
    return isinstance(exc, TimeoutError | ConnectionResetError)


def describe(exc: BaseException) -> str:
    """One short line for logs and Batch Operations result strings."""
    code = error_code(exc)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__} {code}: {text}" if code else f"{type(exc).__name__}: {text}"
