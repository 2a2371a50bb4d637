"""Errors the service raises on purpose. Each message says what to change."""

from __future__ import annotations


class ModerationError(Exception):
    """Base class for the service's own errors."""


class InputError(ModerationError):
    """The caller sent something we cannot judge. Maps to a 4xx with `detail` = the message."""

    status_code = 400

    def __init__(self, detail: str, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class PayloadTooLarge(InputError):
    """Bytes or pixels over the configured limits."""

    status_code = 413


class FetchRefused(InputError):
    """A URL we will not fetch (scheme, address, redirect, size or time)."""


class ConfigurationError(ModerationError):
    """Start-up configuration is wrong or incomplete (model, policy, settings)."""
