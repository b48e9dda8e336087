"""`/api/v1/datasets`: who sees which dataset, what they see of it, and granule search with cursor paging.

Datasets are registered with the catalog service and their granules inserted as rows, as an indexing would leave them,
in the database the real server serves (SQLite and PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from nephelae.accounts import projects
from nephelae.catalog.datasets import add_dataset, get_dataset, refresh_summary
from nephelae.db import session_factory
from nephelae.db.models import Granule
from tests.api.support import People, assert_problem, bearer
from tests.support.server import RunningServer

DAY0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
L4_DAYS = 10
VARIABLES = [{"name": "analysed_sst", "dims": ["time", "lat", "lon"], "dtype": "int16", "units": "kelvin"}]
# name: (west, south, east, north), each a ten-minute swath on 2020-01-01 at the hour of its position.
SWATHS: dict[str, tuple[float, float, float, float]] = {
    "atlantic": (-60.0, 10.0, -20.0, 40.0),
    "pacific": (150.0, -20.0, 175.0, 5.0),
    "dateline": (170.0, -10.0, -170.0, 10.0),  # crosses the antimeridian
    "arctic": (-180.0, 70.0, 180.0, 90.0),
}


@dataclass(frozen=True)
class Catalog:
    """Tokens of the people of the test catalog: alice is in oceanheatflux, bob in glaciers."""

    alice: str
    bob: str
    admin: str


def add_granules(session: Session, dataset_id: str, granules: Sequence[dict[str, Any]]) -> None:
    """Granule rows as the indexer writes them (`path`, times and box given), then the dataset summary."""
    for number, fields in enumerate(granules):
        session.add(
            Granule(
                dataset_id=dataset_id,
                size=1000 + number,
                mtime_ns=0,
                status=fields.pop("status", "ok"),
                variables=VARIABLES,
                attributes={},
                **fields,
            )
        )
    session.commit()
    refresh_summary(session, get_dataset(session, dataset_id))


def l4_granules(days: int = L4_DAYS) -> list[dict[str, Any]]:
    """Daily global grids from 2020-01-01."""
    return [
        {
            "path": f"2020/{day + 1:03d}/l4-{day}.nc",
            "time_start": DAY0 + dt.timedelta(days=day),
            "time_end": DAY0 + dt.timedelta(days=day + 1),
            "west": -180.0,
            "south": -90.0,
            "east": 180.0,
            "north": 90.0,
        }
        for day in range(days)
    ]


def swath_granules() -> list[dict[str, Any]]:
    rows = []
    for hour, (name, (west, south, east, north)) in enumerate(SWATHS.items()):
        start = DAY0 + dt.timedelta(hours=hour)
        box = {"west": west, "south": south, "east": east, "north": north}
        rows.append({"path": f"{name}.nc", "time_start": start, "time_end": start + dt.timedelta(minutes=10), **box})
    rows.append({"path": "broken.nc", "status": "unreadable", "reason": "not a NetCDF file"})
    return rows


def build_catalog(engine: Engine, root: str = "/archive") -> Catalog:
    """Four datasets: two of oceanheatflux (alice), one of glaciers (bob), one public; with granules."""
    people = People(session_factory(engine))
    catalog = Catalog(alice=people.account("alice"), bob=people.account("bob"), admin=people.admin())
    with session_factory(engine)() as session:
        for project, member in (("oceanheatflux", "alice"), ("glaciers", "bob")):
            projects.create_project(session, project, actor="setup")
            projects.add_member(session, project, member, actor="setup")
        add_dataset(session, "sst-l4", f"{root}/l4", "**/*.nc", title="L4 SST", projects=["oceanheatflux"])
        add_dataset(session, "sst-l2p", f"{root}/l2p", "*.nc", license="CC-BY-4.0", projects=["oceanheatflux"])
        add_dataset(session, "ice-charts", f"{root}/ice", "*.nc", projects=["glaciers"])
        add_dataset(session, "bathymetry", f"{root}/bathy", "*.nc", public=True)
        add_granules(session, "sst-l4", l4_granules())
        add_granules(session, "sst-l2p", swath_granules())
    return catalog


@pytest.fixture
def catalog(server: RunningServer, engine: Engine) -> Catalog:
    return build_catalog(engine)


def get(server: RunningServer, token: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1{path}", params=params, headers=bearer(token), timeout=10)


def found(server: RunningServer, token: str, dataset: str, **params: Any) -> list[str]:
    """Paths of the granules one search returns (a single page)."""
    response = get(server, token, f"/datasets/{dataset}/granules", **params)
    assert response.status_code == 200, response.text
    return [granule["path"] for granule in response.json()["granules"]]


def test_each_caller_lists_the_datasets_they_may_read(server: RunningServer, catalog: Catalog) -> None:
    listed = get(server, catalog.alice, "/datasets").json()
    assert [dataset["id"] for dataset in listed] == ["bathymetry", "sst-l2p", "sst-l4"]
    assert [dataset["id"] for dataset in get(server, catalog.bob, "/datasets").json()] == ["bathymetry", "ice-charts"]
    assert len(get(server, catalog.admin, "/datasets").json()) == 4
    l2p = listed[1]
    assert l2p["granule_count"] == 5 and l2p["unreadable_count"] == 1 and l2p["license"] == "CC-BY-4.0"
    assert l2p["bbox"] == [-180.0, -20.0, 180.0, 90.0]  # W,S,E,N: a crossing swath makes it global in longitude
    assert l2p["time_start"] == "2020-01-01T00:00:00Z" and l2p["time_end"] == "2020-01-01T03:10:00Z"
    assert l2p["variables"][0]["name"] == "analysed_sst" and l2p["variables"][0]["units"] == "kelvin"
    assert l2p["indexed_at"] is not None and l2p["public"] is False
    assert listed[0]["bbox"] is None and listed[0]["granule_count"] == 0 and listed[0]["public"] is True
    assert all("root" not in dataset and "pattern" not in dataset for dataset in listed)
    assert_problem(httpx.get(f"{server.url}/api/v1/datasets"), 401, "unauthenticated")


def test_one_dataset_hides_its_storage_from_everyone_but_admins(server: RunningServer, catalog: Catalog) -> None:
    shown = get(server, catalog.alice, "/datasets/sst-l4").json()
    assert shown["title"] == "L4 SST" and shown["granule_count"] == L4_DAYS
    assert shown["bbox"] == [-180.0, -90.0, 180.0, 90.0] and shown["time_end"] == "2020-01-11T00:00:00Z"
    assert "root" not in shown and "pattern" not in shown
    assert shown["variables"][0] == VARIABLES[0] | {"standard_name": None, "long_name": None}  # nulls kept
    as_admin = get(server, catalog.admin, "/datasets/sst-l4").json()
    assert (as_admin["root"], as_admin["pattern"]) == ("/archive/l4", "**/*.nc")
    detail = assert_problem(get(server, catalog.alice, "/datasets/ice-charts"), 403, "forbidden")
    assert "alice has no access to dataset ice-charts" in detail and "oceanheatflux" in detail
    assert_problem(get(server, catalog.alice, "/datasets/ice-charts/granules"), 403, "forbidden")
    assert "no dataset 'nowhere'" in assert_problem(get(server, catalog.alice, "/datasets/nowhere"), 404, "not_found")
    assert_problem(get(server, catalog.alice, "/datasets/nowhere/granules"), 404, "not_found")
    bathymetry = get(server, catalog.bob, "/datasets/bathymetry").json()  # public: anyone approved reads it
    assert bathymetry["bbox"] is None and bathymetry["indexed_at"] is None and "root" not in bathymetry
    assert_problem(get(server, catalog.alice, "/datasets/Not..AnId"), 422, "invalid_request")


def test_paging_with_cursors_returns_every_granule_once(server: RunningServer, catalog: Catalog) -> None:
    everything = found(server, catalog.alice, "sst-l4")
    assert len(everything) == L4_DAYS
    paths, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = get(server, catalog.alice, "/datasets/sst-l4/granules", **params).json()
        paths += [granule["path"] for granule in page["granules"]]
        pages, cursor = pages + 1, page["next_cursor"]
        if cursor is None:
            assert page["links"] == []
            break
        assert page["links"][0]["rel"] == "next" and f"cursor={cursor}" in page["links"][0]["href"]
    assert (paths, pages) == (everything, 4)
    first = get(server, catalog.alice, "/datasets/sst-l4/granules", limit=4, datetime="2020-01-03T12:00:00Z/..").json()
    following = httpx.get(first["links"][0]["href"], headers=bearer(catalog.alice), timeout=10).json()
    assert [granule["path"] for granule in first["granules"] + following["granules"]][:6] == everything[2:8]
    granule = first["granules"][0]
    assert granule["variables"] == ["analysed_sst"] and granule["size"] >= 1000 and isinstance(granule["id"], int)
    assert granule["bbox"] == [-180.0, -90.0, 180.0, 90.0] and granule["time_start"] == "2020-01-03T00:00:00Z"


def test_time_and_box_select_granules(server: RunningServer, catalog: Catalog) -> None:
    alice = catalog.alice
    assert found(server, alice, "sst-l4", datetime="2020-01-05T12:00:00Z") == ["2020/005/l4-4.nc"]
    assert len(found(server, alice, "sst-l4", datetime="../2020-01-02")) == 2  # touching the end counts
    assert len(found(server, alice, "sst-l4", datetime="2020-01-09T00:00:00+00:00/..")) == 3
    assert len(found(server, alice, "sst-l4", datetime="2020-01-02/2020-01-03T06:00:00Z")) == 3
    assert found(server, alice, "sst-l2p", bbox="-80,0,0,60") == ["atlantic.nc"]
    assert found(server, alice, "sst-l2p", bbox="-80,0,0,75") == ["atlantic.nc", "arctic.nc"]
    # A box across the antimeridian finds the crossing swath and the one just west of it, not the Atlantic.
    assert found(server, alice, "sst-l2p", bbox="172,-5,-175,5") == ["pacific.nc", "dateline.nc"]
    assert found(server, alice, "sst-l2p", bbox="-175,-5,-172,5") == ["dateline.nc"]
    assert found(server, alice, "sst-l2p", bbox="-60,-60,-50,-50") == []
    assert found(server, alice, "sst-l2p", bbox="-80,0,0,75", datetime="2020-01-01T03:00:00Z") == ["arctic.nc"]


MALFORMED: list[tuple[dict[str, Any], int, str]] = [
    ({"bbox": "1,2,3"}, 400, "is not four numbers W,S,E,N"),
    ({"bbox": "west,0,east,10"}, 400, "is not four numbers W,S,E,N"),
    ({"bbox": "0,60,10,50"}, 400, "latitudes must satisfy"),
    ({"datetime": "yesterday"}, 400, "is not an RFC 3339 date-time"),
    ({"datetime": "2020-02-01/2020-01-01"}, 400, "the start is after the end"),
    ({"datetime": "../.."}, 400, "is not an instant or an interval"),
    ({"cursor": "not-a-cursor"}, 400, "the paging cursor is damaged"),
    ({"limit": 0}, 422, "limit"),
    ({"limit": 10_001}, 422, "limit"),
]


def test_malformed_search_inputs_are_problems(server: RunningServer, people: People, engine: Engine) -> None:
    token = people.admin()
    with session_factory(engine)() as session:
        add_dataset(session, "sst-l4", "/archive/l4", "*.nc")
    for params, status, expected in MALFORMED:
        code = "invalid_input" if status == 400 else "invalid_request"
        detail = assert_problem(get(server, token, "/datasets/sst-l4/granules", **params), status, code)
        assert expected in detail, (params, detail)
