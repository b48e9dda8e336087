"""`POST /api/v1/analysis/{operation}` on a real server: each format by Accept, every refusal as a problem.

The demo L4 archive (four days) is indexed into the served database (SQLite and PostgreSQL); alice's project
holds it, bob's does not. A small `analysis_max_cells` makes a global subset too large.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
import xarray as xr
from sqlalchemy import Engine

from nephelae.client import Client
from nephelae.config import Settings
from nephelae.errors import PermissionDenied, RequestTooLarge
from tests.analysis.support import L4, Callers, serve_demo_l4
from tests.api.support import assert_problem, bearer
from tests.support.compliance import assert_cf_compliant
from tests.support.server import RunningServer

MAX_CELLS = 2_000_000  # a 60 x 40 degree box over 4 days is 153,600 values; the globe is 4,147,200
BOX = [-60.0, -20.0, 0.0, 20.0]
SERIES = {"dataset": L4, "variables": ["analysed_sst"], "bbox": BOX, "time": "2020-01-01/2020-01-04T23:59:59Z"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"analysis_max_cells": MAX_CELLS})


@pytest.fixture
def callers(server: RunningServer, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Callers:
    return serve_demo_l4(engine, tmp_path_factory)


def post(
    server: RunningServer, token: str | None, operation: str, body: object, accept: str | None = None
) -> httpx.Response:
    headers = bearer(token) if token else {}
    if accept is not None:
        headers["Accept"] = accept
    return httpx.post(f"{server.url}/api/v1/analysis/{operation}", json=body, headers=headers, timeout=60)


def test_a_timeseries_in_each_format(server: RunningServer, callers: Callers, tmp_path: Path) -> None:
    answer = post(server, callers.alice, "timeseries", SERIES)  # no Accept: JSON
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    document = answer.json()
    assert document["variable"] == "analysed_sst" and document["units"] == "kelvin"
    assert [point["time"] for point in document["points"]] == [f"2020-01-0{day}T12:00:00Z" for day in (1, 2, 3, 4)]
    values = [point["value"] for point in document["points"]]
    assert all(280 < value < 305 for value in values)

    table = post(server, callers.alice, "timeseries", SERIES, "text/csv")
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [float(row["analysed_sst"]) for row in rows] == pytest.approx(values)

    picture = post(server, callers.alice, "timeseries", SERIES, "image/png")
    assert picture.headers["content-type"] == "image/png" and picture.content.startswith(b"\x89PNG")

    preferred = "text/html;q=0.9, application/x-netcdf, */*;q=0.1"
    netcdf = post(server, callers.alice, "timeseries", SERIES, preferred)
    assert netcdf.headers["content-type"] == "application/x-netcdf"
    assert 'filename="demo-l4-sst-timeseries-analysed_sst.nc"' in netcdf.headers["content-disposition"]
    path = tmp_path / "series.nc"
    path.write_bytes(netcdf.content)
    assert_cf_compliant(path)
    with xr.open_dataset(path) as series:
        assert series["analysed_sst"].values.tolist() == pytest.approx(values)
        assert series.attrs["nephelae_dataset"] == L4 and series.attrs["nephelae_granule_count"] == 4


GRIDDED = [
    ("subset", None, "application/x-netcdf"),
    ("climatology", "application/x-netcdf", "application/x-netcdf"),
    ("map", "application/x-netcdf", "application/x-netcdf"),
    ("map", None, "image/png"),
]


def test_gridded_answers(server: RunningServer, callers: Callers, tmp_path: Path) -> None:
    body = SERIES | {"variables": ["analysed_sst"], "bbox": "170,-10,-170,10"}
    for operation, accept, media_type in GRIDDED:
        answer = post(server, callers.alice, operation, body, accept)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == media_type
        if media_type == "image/png":
            assert answer.content.startswith(b"\x89PNG")
            continue
        path = tmp_path / f"{operation}.nc"
        path.write_bytes(answer.content)
        assert_cf_compliant(path)
        with xr.open_dataset(path) as result:
            assert result.sizes["lat"] == 80 and result.sizes["lon"] == 80  # 20 x 20 degrees across the antimeridian
            assert json.loads(result.attrs["nephelae_request"])["operation"] == operation


def test_every_refusal_is_a_problem(server: RunningServer, callers: Callers) -> None:
    assert_problem(post(server, None, "timeseries", SERIES), 401, "unauthenticated")
    assert "no access to dataset demo-l4-sst" in assert_problem(
        post(server, callers.bob, "map", SERIES), 403, "forbidden"
    )
    missing = assert_problem(post(server, callers.alice, "map", SERIES | {"dataset": "nowhere"}), 404, "not_found")
    assert "no dataset 'nowhere'" in missing
    refused = assert_problem(post(server, callers.alice, "subset", SERIES, "image/png"), 406, "not_acceptable")
    assert "application/x-netcdf" in refused
    too_large = assert_problem(post(server, callers.alice, "subset", SERIES | {"bbox": None}), 413, "request_too_large")
    assert (
        "4,147,200 values" in too_large and f"{MAX_CELLS:,}" in too_large and "nephelae campaigns submit" in too_large
    )
    for body in (
        SERIES | {"variables": []},
        SERIES | {"variables": ["../etc/passwd"]},
        SERIES | {"shell": "rm -rf /"},
        {"variables": ["analysed_sst"]},
    ):
        assert_problem(post(server, callers.alice, "timeseries", body), 422, "invalid_request")
    assert_problem(post(server, callers.alice, "kriging", SERIES), 422, "invalid_request")
    for hostile, reason in (
        ({"bbox": [0, -100, 10, 10]}, "latitudes must satisfy"),
        ({"time": "2020-02-01/2020-01-01"}, "start is after the end"),
        ({"variables": ["no_such_variable"]}, "has no variable no_such_variable"),
    ):
        detail = assert_problem(post(server, callers.alice, "timeseries", SERIES | hostile), 400, "invalid_input")
        assert reason in detail


def test_the_client_decodes_answers_and_raises_the_server_errors(server: RunningServer, callers: Callers) -> None:
    with Client.open(server.url, callers.alice) as client:
        series = client.analysis.timeseries(L4, "analysed_sst", bbox=BOX, time=("2020-01-02", "2020-01-03"))
        assert [point["time"][:10] for point in series["points"]] == [
            "2020-01-02",
            "2020-01-03",
        ]  # an end date includes its day
        assert client.analysis.map(L4, "analysed_sst", bbox="-10,40,10,50").startswith(b"\x89PNG")
        assert client.analysis.subset(L4, ["analysed_sst"], bbox=BOX).startswith(b"\x89HDF")
        with pytest.raises(RequestTooLarge, match="run it as a campaign"):
            client.analysis.climatology(L4, "analysed_sst")
    with Client.open(server.url, callers.bob) as client, pytest.raises(PermissionDenied):
        client.analysis.timeseries(L4, "analysed_sst", bbox=BOX)
