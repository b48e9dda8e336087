"""`Client`: a connection to one Nephelae server, for notebooks, scripts and the CLI's user commands."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from nephelae.client.analysis import Analysis
from nephelae.client.files import Files
from nephelae.client.transport import Transport, response_error
from nephelae.client.wire import (
    BBoxLike,
    Campaign,
    CampaignTask,
    Dataset,
    DatetimeLike,
    Granule,
    bbox_param,
    datetime_param,
)
from nephelae.errors import InvalidInput

MAX_PAGE_SIZE = 10_000
MAX_TASK_PAGE = 1000
SPEC_MEDIA_TYPE = "application/yaml"


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
        self._transport = Transport(url, token, timeout=timeout, retries=retries, backoff=backoff, transport=transport)
        self.url = self._transport.url
        self.analysis = Analysis(self._transport)
        self.files = Files(self._transport)

    @classmethod
    def open(cls, url: str, token: str | None = None, *, timeout: float = 30.0, retries: int = 3) -> Client:
        """A client of the server at `url` (e.g. `http://127.0.0.1:8000`), sending `token` as a bearer token.

        No request is made until the first call. `timeout` is in seconds per request; connection failures and
        502/503/504 answers are tried again `retries` times, waiting longer each time.
        """
        return cls(url, token, timeout=timeout, retries=retries)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        """The server's health: status, version and database state (needs no token)."""
        return dict(self._transport.get("/health"))

    def me(self) -> dict[str, Any]:
        """Who the server takes you for: account, role, projects, allowed ranges, your address as it sees it."""
        return dict(self._transport.get("/me"))

    def datasets(self) -> list[Dataset]:
        """The datasets you may read."""
        return [Dataset.from_wire(item) for item in self._transport.get("/datasets")]

    def dataset(self, dataset_id: str) -> Dataset:
        """One dataset; `NotFound` if there is none, `PermissionDenied` if you may not read it."""
        return Dataset.from_wire(self._transport.get(f"/datasets/{quote(dataset_id, safe='')}"))

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
            page = self._transport.get(path, {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})})
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
            return Campaign.from_wire(
                self._transport.post("/campaigns", content=spec.encode(), media_type=SPEC_MEDIA_TYPE)
            )
        return Campaign.from_wire(self._transport.post("/campaigns", json=dict(spec)))

    def campaigns(self, *, everyone: bool = False) -> list[Campaign]:
        """Your campaigns, newest first; `everyone=True` lists every account's (admins only)."""
        return [
            Campaign.from_wire(item)
            for item in self._transport.get("/campaigns", {"all": "true"} if everyone else None)
        ]

    def campaign(self, campaign_id: int) -> Campaign:
        """One campaign; `NotFound` if there is none or it is not yours."""
        return Campaign.from_wire(self._transport.get(f"/campaigns/{int(campaign_id)}"))

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
            page = self._transport.get(path, params | paging)
            yield from (CampaignTask.from_wire(item) for item in page["tasks"])
            after = page.get("next")
            if after is None:
                return

    def task_log(self, campaign_id: int, ordinal: int, *, tail_bytes: int | None = None) -> str:
        """The end of one task's log (the server's default length unless `tail_bytes` says otherwise)."""
        path = f"/campaigns/{int(campaign_id)}/tasks/{int(ordinal)}/log"
        response = self._transport.send("GET", path, {"tail": str(tail_bytes)} if tail_bytes else None)
        if not response.is_success:
            raise response_error(response)
        return response.text

    def cancel_campaign(self, campaign_id: int) -> Campaign:
        """Ask the server to cancel the campaign; `Conflict` if it has already ended."""
        return Campaign.from_wire(self._transport.post(f"/campaigns/{int(campaign_id)}/cancel"))

    def retry_campaign(self, campaign_id: int) -> Campaign:
        """Ask the server to run the campaign's failed tasks again; `Conflict` if there is nothing to retry."""
        return Campaign.from_wire(self._transport.post(f"/campaigns/{int(campaign_id)}/retry"))

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
