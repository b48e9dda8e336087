"""The Python client of the Nephelae HTTP API, for notebooks, scripts and the CLI's user commands.

    from nephelae.client import Client

    with Client.open("https://nephelae.example.org", token) as nephelae:
        for granule in nephelae.granules("odyssea-l4-sst", bbox=(-80, 0, 0, 60), datetime="2020-01/2020-03",
                                         max_items=500):
            print(granule.path, granule.time_start)
        campaign = nephelae.submit_campaign(Path("sst-anomaly.yaml").read_text())
        campaign = nephelae.wait_campaign(campaign.id, on_progress=lambda c: print(c.status, c.progress))

It knows only the wire format of `/api/v1`. Connection failures and 502/503/504 answers are retried with backoff
(a POST only when it could not reach the server: it is never carried out twice);
every error answer is raised again as the `NephelaeError` class the server raised (`NotFound`, `PermissionDenied`,
`AuthenticationRequired`...), so `except NotFound:` works the same on both sides of the wire.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from nephelae import __version__
from nephelae.errors import (
    AuthenticationRequired,
    ConfigurationError,
    InvalidInput,
    NephelaeError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    error_for_code,
)

API_PATH = "/api/v1"
MAX_PAGE_SIZE = 10_000
MAX_TASK_PAGE = 1000
RETRIED_STATUSES = frozenset({502, 503, 504})
MAX_RETRY_WAIT = 30.0  # seconds: a Retry-After longer than this is not waited for
_STATUS_ERRORS: dict[int, type[NephelaeError]] = {401: AuthenticationRequired, 403: PermissionDenied, 404: NotFound}

BBox = tuple[float, float, float, float]
BBoxLike = str | Sequence[float]
DatetimeLike = (
    str | dt.datetime | dt.date | tuple[dt.datetime | dt.date | str | None, dt.datetime | dt.date | str | None]
)


def _moment(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def _box(value: Any) -> BBox | None:
    if not isinstance(value, Sequence) or len(value) != 4:
        return None
    west, south, east, north = (float(number) for number in value)
    return (west, south, east, north)


@dataclass(frozen=True)
class Dataset:
    """A dataset as the API describes it; `wire` holds the whole JSON object, fields newer servers add included."""

    id: str
    title: str
    description: str
    license: str
    public: bool
    granule_count: int
    unreadable_count: int
    time_start: dt.datetime | None
    time_end: dt.datetime | None
    bbox: BBox | None
    variables: list[dict[str, Any]]
    indexed_at: dt.datetime | None
    root: str | None = None  # admins only
    pattern: str | None = None  # admins only
    wire: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Dataset:
        return cls(
            id=data["id"],
            title=data.get("title", data["id"]),
            description=data.get("description", ""),
            license=data.get("license", ""),
            public=bool(data.get("public", False)),
            granule_count=int(data.get("granule_count", 0)),
            unreadable_count=int(data.get("unreadable_count", 0)),
            time_start=_moment(data.get("time_start")),
            time_end=_moment(data.get("time_end")),
            bbox=_box(data.get("bbox")),
            variables=list(data.get("variables") or []),
            indexed_at=_moment(data.get("indexed_at")),
            root=data.get("root"),
            pattern=data.get("pattern"),
            wire=dict(data),
        )


@dataclass(frozen=True)
class Granule:
    """One granule found by a search; `path` is relative to the dataset's root."""

    id: int
    path: str
    time_start: dt.datetime | None
    time_end: dt.datetime | None
    bbox: BBox | None
    variables: tuple[str, ...]
    size: int
    wire: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Granule:
        return cls(
            id=int(data["id"]),
            path=data["path"],
            time_start=_moment(data.get("time_start")),
            time_end=_moment(data.get("time_end")),
            bbox=_box(data.get("bbox")),
            variables=tuple(data.get("variables") or ()),
            size=int(data.get("size", 0)),
            wire=dict(data),
        )


FINAL_STATUSES = frozenset({"completed", "completed_with_failures", "failed", "cancelled"})
SPEC_MEDIA_TYPE = "application/yaml"


@dataclass(frozen=True)
class Campaign:
    """A campaign as the API describes it; `counts` has pending, running, done, failed, cancelled and total tasks."""

    id: int
    name: str
    owner: str
    status: str  # queued | running | completed | completed_with_failures | failed | cancelled
    output_dataset: str
    counts: dict[str, int]
    progress: float  # fraction of the planned tasks finished
    error: str | None
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    wire: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the campaign has ended: it will not change any more unless retried."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Campaign:
        return cls(
            id=int(data["id"]),
            name=data.get("name", ""),
            owner=data.get("owner", ""),
            status=data["status"],
            output_dataset=data.get("output_dataset", ""),
            counts={name: int(value) for name, value in (data.get("counts") or {}).items()},
            progress=float(data.get("progress") or 0.0),
            error=data.get("error"),
            created_at=_moment(data.get("created_at")),
            started_at=_moment(data.get("started_at")),
            finished_at=_moment(data.get("finished_at")),
            wire=dict(data),
        )


@dataclass(frozen=True)
class CampaignTask:
    """One task of a campaign; `id` is its ordinal in the campaign, `log` the URL of its log."""

    id: int
    label: str
    status: str  # pending | running | done | failed | cancelled
    attempts: int
    error: str | None
    log: str | None
    duration: float | None
    worker: str | None
    wire: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CampaignTask:
        duration = data.get("duration")
        return cls(
            id=int(data["id"]),
            label=data.get("label", ""),
            status=data["status"],
            attempts=int(data.get("attempts", 0)),
            error=data.get("error"),
            log=data.get("log"),
            duration=None if duration is None else float(duration),
            worker=data.get("worker"),
            wire=dict(data),
        )


class Client:
    """A connection to one Nephelae server, with one token. Use `Client.open(url, token)`; close it when done."""

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
        self._http = httpx.Client(
            base_url=self.url + API_PATH, headers=headers, timeout=timeout, transport=transport, follow_redirects=True
        )

    @classmethod
    def open(cls, url: str, token: str | None = None, *, timeout: float = 30.0, retries: int = 3) -> Client:
        """A client of the server at `url` (e.g. `http://127.0.0.1:8000`), sending `token` as a bearer token.

        No request is made until the first call. `timeout` is in seconds per request; connection failures and
        502/503/504 answers are tried again `retries` times, waiting longer each time.
        """
        return cls(url, token, timeout=timeout, retries=retries)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        """The server's health: status, version and database state (needs no token)."""
        return dict(self._get("/health"))

    def me(self) -> dict[str, Any]:
        """Who the server takes you for: account, role, projects, allowed ranges, your address as it sees it."""
        return dict(self._get("/me"))

    def datasets(self) -> list[Dataset]:
        """The datasets you may read."""
        return [Dataset.from_wire(item) for item in self._get("/datasets")]

    def dataset(self, dataset_id: str) -> Dataset:
        """One dataset; `NotFound` if there is none, `PermissionDenied` if you may not read it."""
        return Dataset.from_wire(self._get(f"/datasets/{quote(dataset_id, safe='')}"))

    def granules(
        self,
        dataset: str | Dataset,
        bbox: BBoxLike | None = None,
        datetime: DatetimeLike | None = None,
        max_items: int | None = None,
        page_size: int = 100,
    ) -> Iterator[Granule]:
        """The granules of `dataset` in a box and a time interval, in time order, fetched a page at a time as read.

        `bbox`: (W, S, E, N) or "W,S,E,N", W > E crossing the antimeridian. `datetime`: an RFC 3339 instant or
        "START/END" (an end may be ".."), a datetime or date, or a (start, end) pair with None for an open end.
        `max_items` stops after that many granules; None reads them all. `dataset` is an id or a `Dataset`.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"page_size must be 1 to {MAX_PAGE_SIZE}, not {page_size}")
        if max_items is not None and max_items < 0:
            raise InvalidInput(f"max_items must be 0 or more, not {max_items}")
        params = {"bbox": bbox_param(bbox), "datetime": datetime_param(datetime)}
        return self._granule_pages(
            dataset.id if isinstance(dataset, Dataset) else dataset,
            {name: value for name, value in params.items() if value},
            max_items,
            page_size,
        )

    def _granule_pages(
        self, dataset: str, params: dict[str, str], max_items: int | None, page_size: int
    ) -> Iterator[Granule]:
        remaining = max_items
        cursor: str | None = None
        path = f"/datasets/{quote(dataset, safe='')}/granules"
        while remaining is None or remaining > 0:
            limit = page_size if remaining is None else min(page_size, remaining)
            page = self._get(path, {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})})
            for item in page["granules"]:
                yield Granule.from_wire(item)
            if remaining is not None:
                remaining -= len(page["granules"])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def submit_campaign(self, spec: Mapping[str, Any] | str) -> Campaign:
        """Submit a campaign spec: a mapping (sent as JSON), or the text of a YAML or JSON document.

        The server answers `InvalidInput` naming every faulty field, `NotFound` or `PermissionDenied` for an input
        dataset, `Conflict` for an output dataset that is someone else's. Never sent twice (see `_post`).
        """
        if isinstance(spec, str):
            return Campaign.from_wire(self._post("/campaigns", content=spec.encode(), media_type=SPEC_MEDIA_TYPE))
        return Campaign.from_wire(self._post("/campaigns", json=dict(spec)))

    def campaigns(self, *, everyone: bool = False) -> list[Campaign]:
        """Your campaigns, newest first; `everyone=True` lists every account's (admins only)."""
        return [Campaign.from_wire(item) for item in self._get("/campaigns", {"all": "true"} if everyone else None)]

    def campaign(self, campaign_id: int) -> Campaign:
        """One campaign; `NotFound` if there is none or it is not yours."""
        return Campaign.from_wire(self._get(f"/campaigns/{int(campaign_id)}"))

    def tasks(
        self, campaign_id: int, status: str | None = None, *, page_size: int = 100, max_items: int | None = None
    ) -> Iterator[CampaignTask]:
        """The campaign's tasks in id order (only those in `status` if given), fetched a page at a time as read."""
        if not 1 <= page_size <= MAX_TASK_PAGE:
            raise InvalidInput(f"page_size must be 1 to {MAX_TASK_PAGE}, not {page_size}")
        path = f"/campaigns/{int(campaign_id)}/tasks"
        return islice(self._task_pages(path, {"status": status} if status else {}, page_size), max_items)

    def _task_pages(self, path: str, params: dict[str, str], page_size: int) -> Iterator[CampaignTask]:
        after: int | None = None
        while True:
            paging = {"limit": str(page_size)} | ({} if after is None else {"after": str(after)})
            page = self._get(path, params | paging)
            yield from (CampaignTask.from_wire(item) for item in page["tasks"])
            after = page.get("next")
            if after is None:
                return

    def task_log(self, campaign_id: int, ordinal: int, *, tail_bytes: int | None = None) -> str:
        """The end of one task's log (the server's default length unless `tail_bytes` says otherwise)."""
        path = f"/campaigns/{int(campaign_id)}/tasks/{int(ordinal)}/log"
        response = self._send("GET", path, {"tail": str(tail_bytes)} if tail_bytes else None)
        if not response.is_success:
            raise response_error(response)
        return response.text

    def cancel_campaign(self, campaign_id: int) -> Campaign:
        """Ask the server to cancel the campaign; `Conflict` if it has already ended."""
        return Campaign.from_wire(self._post(f"/campaigns/{int(campaign_id)}/cancel"))

    def retry_campaign(self, campaign_id: int) -> Campaign:
        """Ask the server to run the campaign's failed tasks again; `Conflict` if there is nothing to retry."""
        return Campaign.from_wire(self._post(f"/campaigns/{int(campaign_id)}/retry"))

    def wait_campaign(
        self,
        campaign_id: int,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        on_progress: Callable[[Campaign], None] | None = None,
    ) -> Campaign:
        """Poll the campaign every `poll` seconds until it has ended (`Campaign.finished`), and return it.

        `on_progress(campaign)` is called after every poll. `TimeoutError` if it has not ended after `timeout` s.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            campaign = self.campaign(campaign_id)
            if on_progress is not None:
                on_progress(campaign)
            if campaign.finished:
                return campaign
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"campaign {campaign_id} is still {campaign.status} after {timeout:g} s")
            time.sleep(poll if left is None else min(poll, left))

    def _post(self, path: str, *, json: Any = None, content: bytes | None = None, media_type: str | None = None) -> Any:
        """POST and decode the JSON answer, or raise the error it reports.

        Sent again only when the connection could not be made: a request that reached the server may have been
        carried out, and sending it twice could submit a campaign twice.
        """
        headers = {"Content-Type": media_type} if media_type else None
        for attempt in range(self.retries + 1):
            try:
                response = self._http.post(path, json=json, content=content, headers=headers)
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

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET `path` under /api/v1 and decode the JSON answer, or raise the error it reports."""
        response = self._send("GET", path, params)
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise ConfigurationError(
                    f"{self.url}{API_PATH}{path} answered something that is not JSON; is {self.url} a Nephelae server?"
                ) from None
        raise response_error(response)

    def _send(self, method: str, path: str, params: Mapping[str, str] | None) -> httpx.Response:
        """Send one idempotent request, again after connection failures and 502/503/504, waiting longer each time."""
        for attempt in range(self.retries + 1):
            response, failure = self._attempt(method, path, params)
            last = attempt == self.retries
            if response is not None and (last or response.status_code not in RETRIED_STATUSES):
                return response
            if failure is not None and last:
                raise failure
            time.sleep(_retry_wait(self.backoff, attempt, response))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt(
        self, method: str, path: str, params: Mapping[str, str] | None
    ) -> tuple[httpx.Response | None, ServiceUnavailable | None]:
        """One try: the answer, or the error to raise if this was the last try."""
        attempts = self.retries + 1
        try:
            return self._http.request(method, path, params=params), None
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


def bbox_param(bbox: BBoxLike | None) -> str | None:
    """`W,S,E,N` as the API takes it; the server checks the values."""
    if bbox is None or isinstance(bbox, str):
        return bbox or None
    return ",".join(repr(float(number)) for number in bbox)


def datetime_param(value: DatetimeLike | None) -> str | None:
    """An instant or `START/END` (open ends as `..`) as the API takes it; the server checks the values."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, tuple):
        start, end = (_instant(part) for part in value)
        return f"{start}/{end}"
    return _instant(value)


def _instant(value: dt.datetime | dt.date | str | None) -> str:
    if value is None:
        return ".."
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    return value.isoformat() if isinstance(value, dt.date) else value
