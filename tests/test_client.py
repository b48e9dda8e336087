"""`nephelae.client`: against the real server (errors raised again as their classes, lazy paging), and against
scripted transports for what a healthy server does not do (dying, 502/503/504, timeouts, foreign answers)."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import Engine

from nephelae.client import Client, bbox_param, datetime_param
from nephelae.errors import (
    AuthenticationRequired,
    ConfigurationError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)
from tests.api.test_datasets import L4_DAYS, Catalog, build_catalog
from tests.support.server import RunningServer


class CountingTransport(httpx.HTTPTransport):
    """A real transport that counts the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


@pytest.fixture
def catalog(server: RunningServer, engine: Engine) -> Catalog:
    return build_catalog(engine)


@pytest.fixture
def counted(server: RunningServer, catalog: Catalog) -> Iterator[tuple[Client, CountingTransport]]:
    transport = CountingTransport()
    with Client(server.url, catalog.alice, transport=transport) as client:
        yield client, transport


def test_reads_the_platform(server: RunningServer, catalog: Catalog) -> None:
    with Client.open(server.url + "/api/v1/", catalog.alice) as client:  # with or without the API path
        assert client.health()["status"] == "ok"
        assert client.me()["username"] == "alice"
        assert [dataset.id for dataset in client.datasets()] == ["bathymetry", "sst-l2p", "sst-l4"]
        l4 = client.dataset("sst-l4")
    assert (l4.granule_count, l4.bbox, l4.root) == (L4_DAYS, (-180.0, -90.0, 180.0, 90.0), None)
    assert l4.time_start == dt.datetime(2020, 1, 1, tzinfo=dt.UTC) and l4.wire["title"] == "L4 SST"
    with Client.open(server.url, catalog.admin) as client:
        assert client.dataset("sst-l4").root == "/archive/l4"


def test_granules_are_paged_lazily(counted: tuple[Client, CountingTransport]) -> None:
    client, transport = counted
    pages = client.granules("sst-l4", page_size=3)
    assert transport.requests == 0  # nothing is fetched before it is read
    assert [granule.path for granule in pages][-1] == "2020/010/l4-9.nc"
    assert transport.requests == 4  # 3 + 3 + 3 + 1
    transport.requests = 0
    first = list(client.granules("sst-l4", max_items=7, page_size=3))
    assert len(first) == 7 and transport.requests == 3  # the last page asks for 1, not 3
    assert first[0].time_start == dt.datetime(2020, 1, 1, tzinfo=dt.UTC) and first[0].variables == ("analysed_sst",)
    assert list(client.granules("sst-l4", max_items=0)) == [] and transport.requests == 3
    across = client.granules("sst-l2p", bbox=(172, -5, -175, 5))
    assert [granule.path for granule in across] == ["pacific.nc", "dateline.nc"]
    assert len(list(client.granules("sst-l4", datetime=(dt.date(2020, 1, 9), None)))) == 3
    assert len(list(client.granules(client.dataset("sst-l4"), datetime="2020-01-05T12:00:00Z"))) == 1


def test_errors_are_raised_again_as_the_server_raised_them(server: RunningServer, catalog: Catalog) -> None:
    with Client.open(server.url, catalog.alice) as client:
        with pytest.raises(NotFound, match="no dataset 'nowhere'") as missing:
            client.dataset("nowhere")
        assert str(missing.value).startswith("not_found: ")
        with pytest.raises(PermissionDenied, match="alice has no access to dataset ice-charts"):
            client.dataset("ice-charts")
        with pytest.raises(InvalidInput, match="latitudes must satisfy"):
            next(client.granules("sst-l4", bbox="0,60,10,50"))
        with pytest.raises(InvalidInput, match="page_size must be 1 to 10000"):
            client.granules("sst-l4", page_size=0)
    with Client.open(server.url, "nph_not-a-token") as client, pytest.raises(AuthenticationRequired, match="unknown"):
        client.datasets()
    with Client.open(server.url) as client, pytest.raises(AuthenticationRequired, match="no credentials"):
        client.me()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there once the probe is closed


def test_a_dead_server_is_retried_then_reported_clearly() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", "token", retries=2, backoff=0.01)
    with client, pytest.raises(ServiceUnavailable) as failed:
        client.health()
    assert "cannot reach the Nephelae server at http://127.0.0.1:" in failed.value.detail
    assert "after 3 attempts" in failed.value.detail and "NEPHELAE_URL" in failed.value.detail
    assert failed.value.__cause__ is None and failed.value.__context__ is None  # no chained httpx traceback


def scripted(*answers: httpx.Response | Exception) -> tuple[Client, list[httpx.Request]]:
    """A client whose requests get `answers` in turn (an exception is raised instead of answering)."""
    sent: list[httpx.Request] = []
    replies = iter(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    handler: Callable[[httpx.Request], httpx.Response] = answer
    return Client(
        "http://nephelae.test", "token", retries=3, backoff=0.001, transport=httpx.MockTransport(handler)
    ), sent


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"type": f"urn:nephelae:problem:{code}", "title": code, "status": status, "detail": detail, "code": code}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json", **(headers or {})})


def test_gateway_errors_are_retried_and_others_are_not() -> None:
    client, sent = scripted(httpx.Response(503), httpx.Response(502, text="bad gateway"), httpx.Response(200, json={}))
    assert client.health() == {} and len(sent) == 3
    assert sent[0].headers["authorization"] == "Bearer token" and sent[0].url.path == "/api/v1/health"
    client, sent = scripted(*(httpx.Response(504, text="<html>gateway timeout</html>") for _ in range(4)))
    with pytest.raises(ServiceUnavailable, match=r"HTTP 504 from http://nephelae\.test/api/v1/health: <html>"):
        client.health()
    assert len(sent) == 4
    client, sent = scripted(problem(503, "unavailable", "the database cannot be reached"), httpx.Response(200, json={}))
    assert client.health() == {} and len(sent) == 2
    client, sent = scripted(problem(429, "rate_limited", "slow down", {"Retry-After": "7"}))
    with pytest.raises(RateLimited, match="slow down") as limited:
        client.me()
    assert limited.value.retry_after == 7 and len(sent) == 1
    client, sent = scripted(httpx.Response(404, text="not here"))
    with pytest.raises(NotFound, match="HTTP 404"):
        client.datasets()
    assert len(sent) == 1


def test_timeouts_and_foreign_answers_are_clear() -> None:
    client, _ = scripted(*(httpx.ReadTimeout("timed out") for _ in range(4)))
    with pytest.raises(ServiceUnavailable, match=r"did not answer within 30 s \(4 attempts\)"):
        client.health()
    client, _ = scripted(httpx.Response(200, text="<html>a login page</html>"))
    with pytest.raises(ConfigurationError, match=r"is not JSON; is http://nephelae\.test a Nephelae server"):
        client.health()
    with pytest.raises(ConfigurationError, match="not an http:// or https:// URL"):
        Client.open("nephelae.example.org")


def test_loose_inputs_are_normalised_once() -> None:
    assert bbox_param((-80, 0, 0, 60)) == "-80.0,0.0,0.0,60.0"
    assert bbox_param(" 1,2,3,4") == " 1,2,3,4"  # text goes as given: the server checks it
    assert datetime_param((None, dt.datetime(2020, 1, 31, 12))) == "../2020-01-31T12:00:00+00:00"
    assert datetime_param(dt.date(2020, 1, 1)) == "2020-01-01"
    assert datetime_param("") is None and bbox_param(None) is None
