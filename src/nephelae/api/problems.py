"""One table from errors to HTTP status, one `application/problem+json` shape (RFC 9457) on every path."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from nephelae import errors
from nephelae.sandbox import errors as sandbox

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

STATUS: dict[type[errors.NephelaeError], int] = {
    errors.InvalidInput: 400,
    errors.AuthenticationRequired: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.RequestTooLarge: 413,
    errors.InternalError: 500,
    errors.ConfigurationError: 500,
    errors.ServiceUnavailable: 503,
    sandbox.SandboxError: 422,  # the user's code failed or crashed: their request, not our fault
    sandbox.SandboxTimeout: 504,
}

# Errors raised by the framework itself (routing, parsing), by HTTP status.
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
}


class Problem(BaseModel):
    """The body of every error response."""

    type: str = Field(description="URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What went wrong here and what to do about it.")
    code: str = Field(description="Stable, machine-readable error code.")


def status_for(error: errors.NephelaeError) -> int:
    """The HTTP status of an error: that of its nearest class in the table."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem_response(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    problem = Problem(type=f"urn:nephelae:problem:{code}", title=title, status=status, detail=detail, code=code)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(problem.model_dump(), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _headers_for(error: errors.NephelaeError) -> dict[str, str]:
    """Headers some errors carry besides the body: how long a rate-limited caller should wait."""
    if isinstance(error, errors.RateLimited) and error.retry_after is not None:
        return {"Retry-After": str(error.retry_after)}
    return {}


async def _nephelae_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.NephelaeError)
    return problem_response(status_for(error), error.code, error.title, error.detail, _headers_for(error))


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return problem_response(422, "invalid_request", "Invalid request", _describe_validation(error))


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = _HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
    detail = str(error.detail)
    if error.status_code == 404 and detail == "Not Found":
        detail = "no such resource; the API is described at /api/v1/openapi.json"
    return problem_response(error.status_code, code, code.replace("_", " ").capitalize(), detail)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return problem_response(
        500,
        "internal_error",
        "Internal error",
        "an unexpected error occurred; the server log has the details",
    )


def _describe_validation(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "request"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` a problem+json response."""
    app.add_exception_handler(errors.NephelaeError, _nephelae_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    "4XX": {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": "Client error"},
    "5XX": {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": "Server error"},
}
