"""HTTP transport of the client: one `httpx.Client`, retries with backoff, errors raised again as their classes.

Connection failures and 502/503/504 answers are retried with backoff (a POST only when it could not reach the
server: it is never carried out twice); every error answer is raised again as the `NephelaeError` class the server
raised.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from nephelae import __version__
from nephelae.errors import (
    AuthenticationRequired,
    ConfigurationError,
    NephelaeError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    error_for_code,
)

API_PATH = "/api/v1"
RETRIED_STATUSES = frozenset({502, 503, 504})
MAX_RETRY_WAIT = 30.0  # seconds: a Retry-After longer than this is not waited for
_STATUS_ERRORS: dict[int, type[NephelaeError]] = {401: AuthenticationRequired, 403: PermissionDenied, 404: NotFound}


class Transport:
    """Requests to `/api/v1` of one server with one token; shared by the parts of `Client`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = server_root(url)
        self.retries, self.backoff, self.timeout = max(0, retries), backoff, timeout
        headers = {"Accept": "application/json", "User-Agent": f"nephelae-client/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=self.url + API_PATH, headers=headers, timeout=timeout, transport=transport, follow_redirects=True
        )

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, *, json: Any = None, content: bytes | None = None, media_type: str | None = None) -> Any:
        """POST and decode the JSON answer, or raise the error it reports.

        Sent again only when the connection could not be made: a request that reached the server may have been
        carried out, and sending it twice could submit a campaign twice.
        """
        headers = {"Content-Type": media_type} if media_type else None
        for attempt in range(self.retries + 1):
            try:
                response = self.http.post(path, json=json, content=content, headers=headers)
                break
            except httpx.ConnectError as error:
                if attempt == self.retries:
                    raise ServiceUnavailable(
                        f"cannot reach the Nephelae server at {self.url} ({_reason(error)}); "
                        "check the URL (NEPHELAE_URL) and that the server is running"
                    ) from None
                time.sleep(_retry_wait(self.backoff, attempt, None))
            except httpx.TransportError as error:
                raise ServiceUnavailable(
                    f"no answer from {self.url} ({_reason(error)}); the request may have been carried out: "
                    "check (e.g. `nephelae campaigns list`) before sending it again"
                ) from None
        if not response.is_success:
            raise response_error(response)
        try:
            return response.json()
        except ValueError:
            raise ConfigurationError(f"{self.url}{API_PATH}{path} answered something that is not JSON") from None

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET `path` under /api/v1 and decode the JSON answer, or raise the error it reports."""
        response = self.send("GET", path, params)
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise ConfigurationError(
                    f"{self.url}{API_PATH}{path} answered something that is not JSON; is {self.url} a Nephelae server?"
                ) from None
        raise response_error(response)

    def send(self, method: str, path: str, params: Mapping[str, str] | None, **body: Any) -> httpx.Response:
        """Send one idempotent request, again after connection failures and 502/503/504, waiting longer each time.

        `body` holds httpx's `json`, `content` and `headers` arguments.
        """
        for attempt in range(self.retries + 1):
            response, failure = self._attempt(method, path, params, **body)
            last = attempt == self.retries
            if response is not None and (last or response.status_code not in RETRIED_STATUSES):
                return response
            if failure is not None and last:
                raise failure
            time.sleep(_retry_wait(self.backoff, attempt, response))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request whose answer is not JSON (a file, a PNG, NetCDF...): the successful response, or the error.

        GET, PUT and DELETE are idempotent and retried like `send`; other methods are sent once (see `post`).
        """
        if method not in ("GET", "PUT", "DELETE", "HEAD"):
            return self.once(method, path, params=params, json=json, content=content, headers=headers)
        response = self.send(method, path, params, json=json, content=content, headers=headers)
        if not response.is_success:
            raise response_error(response)
        return response

    def once(self, method: str, path: str, *, hint: str = "", **options: Any) -> httpx.Response:
        """One request that must not be sent again (a POST, a streamed body): the successful response, or the error.

        `options` are httpx's (`params`, `json`, `content`, `headers`, `timeout`); `hint` ends the message of a
        connection failure (e.g. that the request may have been carried out).
        """
        try:
            response = self.http.request(method, path, **options)
        except httpx.TransportError as error:
            raise ServiceUnavailable(f"no answer from {self.url} ({_reason(error)}){hint}") from None
        if not response.is_success:
            raise response_error(response)
        return response

    def _attempt(
        self, method: str, path: str, params: Mapping[str, str] | None, **body: Any
    ) -> tuple[httpx.Response | None, ServiceUnavailable | None]:
        """One try: the answer, or the error to raise if this was the last try."""
        attempts = self.retries + 1
        try:
            return self.http.request(method, path, params=params, **body), None
        except httpx.TimeoutException:
            detail = f"{self.url} did not answer within {self.timeout:g} s ({attempts} attempts); try again later"
        except httpx.TransportError as error:
            detail = (
                f"cannot reach the Nephelae server at {self.url} ({_reason(error)}) after {attempts} attempts; "
                "check the URL (NEPHELAE_URL) and that the server is running"
            )
        return None, ServiceUnavailable(detail)


def _reason(error: httpx.TransportError) -> str:
    return str(error) or type(error).__name__


def _retry_wait(backoff: float, attempt: int, response: httpx.Response | None) -> float:
    """Exponential backoff, or the server's Retry-After when it gives a reasonable one."""
    wait: float = backoff * 2.0**attempt
    retry_after = response.headers.get("retry-after", "") if response is not None else ""
    if retry_after.isdigit():  # the seconds form; an HTTP date is not worth parsing here
        wait = max(wait, min(float(retry_after), MAX_RETRY_WAIT))
    return wait


def response_error(response: httpx.Response) -> NephelaeError:
    """The error an unsuccessful answer reports: the server's own class from a problem document, else by status."""
    problem = _problem(response)
    if problem is not None:
        error = error_for_code(*problem)
        if isinstance(error, RateLimited) and response.headers.get("retry-after", "").isdigit():
            error.retry_after = int(response.headers["retry-after"])
        return error
    text = response.text[:200].strip() or response.reason_phrase
    detail = f"HTTP {response.status_code} from {response.request.url}: {text}"
    if response.status_code >= 500:
        return ServiceUnavailable(detail)
    return _STATUS_ERRORS.get(response.status_code, NephelaeError)(detail)


def _problem(response: httpx.Response) -> tuple[str, str] | None:
    """(code, detail) of a problem+json answer; None for anything else (a proxy's error page...)."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None
    return body["code"], str(body.get("detail") or body.get("title") or "")


def server_root(url: str) -> str:
    """The server's base URL, accepting it with or without a trailing `/api/v1`."""
    root = url.strip().rstrip("/")
    if not root.startswith(("http://", "https://")):
        raise ConfigurationError(f"the server URL {url!r} is not an http:// or https:// URL")
    return root.removesuffix(API_PATH)
