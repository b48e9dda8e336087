"""The one error tree of Nephelae.

Every error a user can meet is a `NephelaeError` with a stable `code`. The domain raises these; the HTTP layer maps
them to status codes in one table (`nephelae.api.problems`), the CLI and SSH print `code: detail`, and the client
raises the same class again from the code it receives.
"""

from __future__ import annotations

from typing import ClassVar


class NephelaeError(Exception):
    """Base of every error meant for a user: a stable code, a title and a detail that says what to do next."""

    code: ClassVar[str] = "error"
    title: ClassVar[str] = "Nephelae error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class InvalidInput(NephelaeError):
    """The request or the command line is malformed or names impossible values."""

    code = "invalid_input"
    title = "Invalid input"


class NotFound(NephelaeError):
    """The named thing does not exist (or the caller may not know that it does)."""

    code = "not_found"
    title = "Not found"


class Conflict(NephelaeError):
    """The request clashes with the current state (a duplicate name, a finished campaign...)."""

    code = "conflict"
    title = "Conflict"


class AuthenticationRequired(NephelaeError):
    """Who are you? No credential, or one that is unknown, expired or revoked."""

    code = "unauthenticated"
    title = "Authentication required"


class PermissionDenied(NephelaeError):
    """You may not: not approved, suspended, IP not allowed, no access to the dataset."""

    code = "forbidden"
    title = "Permission denied"


class PayloadTooLarge(NephelaeError):
    """An upload is larger than the platform accepts (one file's size limit)."""

    code = "payload_too_large"
    title = "Payload too large"


class QuotaExceeded(PayloadTooLarge):
    """An upload would take the workspace past its quota."""

    code = "quota_exceeded"
    title = "Quota exceeded"


class RateLimited(NephelaeError):
    """Too many attempts from one address; slow down."""

    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds to wait, when known (HTTP sends it as Retry-After)


class RequestTooLarge(NephelaeError):
    """An analysis too large to answer within seconds: run it as a campaign instead."""

    code = "request_too_large"
    title = "Request too large"


class ConfigurationError(NephelaeError):
    """A setting, the home directory or the settings file is wrong."""

    code = "configuration_error"
    title = "Configuration error"


class ServiceUnavailable(NephelaeError):
    """A service the platform needs (database, Dask scheduler) cannot be reached."""

    code = "unavailable"
    title = "Service unavailable"


class InternalError(NephelaeError):
    """A bug: something failed that should not. The log has the details."""

    code = "internal_error"
    title = "Internal error"


def error_classes() -> list[type[NephelaeError]]:
    """Every concrete error class, the base first (used by the client to raise the same class again)."""
    found: list[type[NephelaeError]] = [NephelaeError]
    pending = list(NephelaeError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def error_for_code(code: str, detail: str) -> NephelaeError:
    """Rebuild the error a server reported, as the most specific class that carries `code`."""
    for cls in reversed(error_classes()):
        if cls.code == code:
            return cls(detail)
    error = NephelaeError(detail)
    error.code = code  # type: ignore[misc]  # an unknown code from a newer server is kept as is
    return error
