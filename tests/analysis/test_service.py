"""The analysis service on a demo archive and real GHRSST files: numbers, outputs, refusals.

The time series fast path (slabs read per granule in worker processes) is checked against an independent NumPy
computation over whole files and against `toolbox.area_mean` over the lazily stacked granules.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from nephelae.accounts import Principal
from nephelae.analysis import areamean
from nephelae.analysis.estimate import select
from nephelae.analysis.request import AnalysisRequest, build_request
from nephelae.analysis.service import analyse, area_mean_series
from nephelae.catalog.access import open_dataset
from nephelae.errors import InvalidInput, NotFound, PermissionDenied, RequestTooLarge
from nephelae.toolbox import area_mean
from tests.analysis.support import L2P, L4, MET, DemoCatalog, demo_catalog, index_copies
from tests.support.compliance import assert_cf_compliant
from tests.support.real_data import real_files

ADMIN = Principal(1, "operator1", "admin", (), "127.0.0.1")
OUTSIDER = Principal(2, "bob", "user", ("glaciers",), "127.0.0.1")
ATLANTIC = "-60,-20,0,20"
ACROSS_DATELINE = "170,-30,-160,10"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoCatalog]:
    demo = demo_catalog(tmp_path_factory)
    yield demo
    demo.engine.dispose()


def series(catalog: DemoCatalog, request: AnalysisRequest) -> xr.Dataset:
    with catalog.sessions() as session:
        return area_mean_series(session, select(session, ADMIN, catalog.settings, request))


def stacked_area_mean(catalog: DemoCatalog, request: AnalysisRequest) -> xr.Dataset:
    with catalog.sessions() as session:
        lazy = open_dataset(session, request.dataset, time=request.time, bbox=request.bbox, variables=request.variables)
        # Swath positions loaded first: the toolbox's weights refuse dask-backed latitudes (reported upstream).
        lazy = lazy.assign_coords({name: coord.load() for name, coord in lazy.coords.items() if coord.ndim > 1})
        return area_mean(lazy, list(request.variables)).compute()


def numpy_area_mean(paths: list[str], variable: str, box: tuple[float, float, float, float]) -> list[float]:
    """Whole files read with netCDF4's own masking and scaling, the box picked with boolean masks."""
    west, south, east, north = box
    means = []
    for path in paths:
        with netCDF4.Dataset(path) as dataset:
            lat, lon = dataset["lat"][:].astype(float), dataset["lon"][:].astype(float)
            data = np.ma.masked_invalid(dataset[variable][0].astype(float))
        lon = (lon + 180.0) % 360.0 - 180.0
        in_lon = (lon >= west) & (lon <= east) if west <= east else (lon >= west) | (lon <= east)
        window = data[np.ix_((lat >= south) & (lat <= north), in_lon)]
        weights = np.broadcast_to(np.cos(np.deg2rad(lat[(lat >= south) & (lat <= north)]))[:, None], window.shape)
        means.append(float(np.ma.average(window, weights=weights)))
    return means


@pytest.mark.parametrize("bbox", [ATLANTIC, ACROSS_DATELINE, None])
def test_timeseries_matches_numpy_and_the_toolbox(catalog: DemoCatalog, bbox: str | None) -> None:
    request = build_request("timeseries", L4, ["analysed_sst", "sea_ice_fraction"], bbox=bbox)
    ours = series(catalog, request)
    assert ours.sizes["time"] == 4
    reference = stacked_area_mean(catalog, request)
    for name in request.variables:
        np.testing.assert_allclose(ours[name].values, reference[name].values, rtol=1e-9, equal_nan=True)
    with catalog.sessions() as session:
        paths = select(session, ADMIN, catalog.settings, request).paths
    box = tuple(float(part) for part in bbox.split(",")) if bbox else (-180.0, -90.0, 180.0, 90.0)
    expected = numpy_area_mean(paths, "analysed_sst", box)  # type: ignore[arg-type]
    np.testing.assert_allclose(ours["analysed_sst"].values, expected, rtol=1e-7)
    assert ours["analysed_sst"].attrs["units"] == "kelvin"
    assert "area: mean" in ours["analysed_sst"].attrs["cell_methods"]


def test_the_worker_pool_gives_the_same_numbers(catalog: DemoCatalog, monkeypatch: pytest.MonkeyPatch) -> None:
    request = build_request("timeseries", L4, ["analysed_sst"], bbox=ATLANTIC)
    inline = series(catalog, request)
    monkeypatch.setattr(areamean, "INLINE_BELOW", 0)  # four granules through the process pool
    wait(areamean.start_pool(), timeout=60)  # a call while the workers start is reduced inline instead
    pooled = series(catalog, request)
    np.testing.assert_array_equal(pooled["analysed_sst"].values, inline["analysed_sst"].values)


def test_timeseries_keeps_only_the_interval(catalog: DemoCatalog) -> None:
    # The granule of 2 January covers that whole day; its time step (noon) is outside an interval ending at 6:00.
    request = build_request("timeseries", L4, ["analysed_sst"], bbox=ATLANTIC, time="2020-01-01/2020-01-02T06:00:00Z")
    ours = series(catalog, request)
    assert [str(moment)[:19] for moment in ours["time"].values] == ["2020-01-01T12:00:00"]


@pytest.mark.parametrize(
    ("time", "days"),
    [("2020-01-02", ["02"]), ("2020-01-01/2020-01-02", ["01", "02"]), ("2020-01-02/..", ["02", "03", "04"])],
)
def test_dates_mean_whole_days(catalog: DemoCatalog, time: str, days: list[str]) -> None:
    ours = series(catalog, build_request("timeseries", L4, ["analysed_sst"], bbox=ATLANTIC, time=time))
    assert [str(moment)[8:10] for moment in ours["time"].values] == days  # the end date's noon step included


def test_timeseries_of_swaths_goes_through_the_toolbox(catalog: DemoCatalog) -> None:
    request = build_request("timeseries", L2P, ["sea_surface_temperature"], time="2020-01-02/2020-01-02T23:59:59Z")
    ours = series(catalog, request)
    reference = stacked_area_mean(catalog, request)
    assert ours.sizes["time"] >= 1
    np.testing.assert_allclose(ours["sea_surface_temperature"].values, reference["sea_surface_temperature"].values)


def test_formats_of_a_timeseries(catalog: DemoCatalog) -> None:
    request = build_request("timeseries", L4, ["analysed_sst"], bbox=ATLANTIC)
    with catalog.sessions() as session:
        document = json.loads(analyse(session, ADMIN, catalog.settings, request, "json").content or b"")
        csv = (analyse(session, ADMIN, catalog.settings, request, "csv").content or b"").decode()
        png = analyse(session, ADMIN, catalog.settings, request, "png").content or b""
    assert document["variable"] == "analysed_sst" and document["units"] == "kelvin"
    assert [point["time"] for point in document["points"]][:2] == ["2020-01-01T12:00:00Z", "2020-01-02T12:00:00Z"]
    assert all(270 < point["value"] < 310 for point in document["points"])
    lines = csv.splitlines()
    assert lines[0] == "time,analysed_sst" and len(lines) == 5
    assert float(lines[1].split(",")[1]) == pytest.approx(document["points"][0]["value"])
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("operation", "bbox", "variables"),
    [
        ("timeseries", ATLANTIC, ["analysed_sst", "analysis_error"]),
        ("subset", ACROSS_DATELINE, ["analysed_sst", "mask"]),
        ("climatology", ATLANTIC, ["analysed_sst"]),
        ("map", ACROSS_DATELINE, ["analysed_sst"]),
    ],
)
def test_netcdf_outputs_are_cf_compliant_with_provenance(
    catalog: DemoCatalog, operation: str, bbox: str, variables: list[str]
) -> None:
    request = build_request(operation, L4, variables, bbox=bbox, time="2020-01-01/2020-01-02T23:00:00Z")
    with catalog.sessions() as session:
        rendered = analyse(session, ADMIN, catalog.settings, request, "netcdf")
    assert rendered.path is not None
    try:
        assert_cf_compliant(rendered.path)
        with xr.open_dataset(rendered.path) as result:
            assert result.attrs["Conventions"] == "CF-1.8"
            assert result.attrs["nephelae_dataset"] == L4
            assert result.attrs["nephelae_granule_count"] == 2
            assert "2020/001/" in result.attrs["nephelae_granules"]
            assert json.loads(result.attrs["nephelae_request"])["operation"] == operation
            assert f"analysis {operation}" in result.attrs["history"].splitlines()[0]
            assert set(variables) <= set(result.data_vars)
    finally:
        rendered.path.unlink()


def test_subset_holds_the_source_values_across_the_antimeridian(catalog: DemoCatalog) -> None:
    request = build_request("subset", L4, ["analysed_sst"], bbox=ACROSS_DATELINE, time="2020-01-02/2020-01-02T23:00Z")
    with catalog.sessions() as session:
        rendered = analyse(session, ADMIN, catalog.settings, request, "netcdf")
        path = select(session, ADMIN, catalog.settings, request).paths[0]
    assert rendered.path is not None
    with xr.open_dataset(rendered.path) as result, xr.open_dataset(path) as source:
        lon = result["lon"].values
        assert np.all(np.diff(lon) > 0) and lon[0] > 170 and lon[-1] > 180  # continuous: 170..200
        expected = source["analysed_sst"].sel(lat=result["lat"], lon=((lon + 180) % 360) - 180, method="nearest")
        np.testing.assert_array_equal(result["analysed_sst"].values, expected.values)
    rendered.path.unlink()


def test_a_request_too_large_is_refused_before_reading(tmp_path_factory: pytest.TempPathFactory) -> None:
    small = demo_catalog(tmp_path_factory, analysis_max_cells=100_000)
    request = build_request("subset", L4, ["analysed_sst", "analysis_error"], bbox=ATLANTIC)
    with small.sessions() as session, pytest.raises(RequestTooLarge) as refused:
        analyse(session, ADMIN, small.settings, request, "netcdf")
    small.engine.dispose()
    detail = refused.value.detail
    assert "307,200 values" in detail  # 4 granules x (160 x 240 cells of 0.25 degree) x 2 variables
    assert "100,000" in detail and "nephelae campaigns submit" in detail and "nephelae.processors:subset" in detail


def test_access_is_checked(catalog: DemoCatalog) -> None:
    request = build_request("timeseries", L4, ["analysed_sst"], bbox=ATLANTIC)
    with catalog.sessions() as session:
        with pytest.raises(PermissionDenied, match="no access to dataset demo-l4-sst"):
            analyse(session, OUTSIDER, catalog.settings, request, "json")
        with pytest.raises(NotFound, match="no dataset 'nowhere'"):
            analyse(session, OUTSIDER, catalog.settings, build_request("map", "nowhere", ["x"]), "png")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"bbox": "-10,-95,10,0"}, "latitudes must satisfy"),
        ({"bbox": "west,0,10,10"}, "not four numbers"),
        ({"bbox": "10.01,10.01,10.02,10.02"}, "holds no grid cell"),
        ({"time": "2020-01-03/2020-01-01"}, "the start is after the end"),
        ({"time": "yesterday"}, "not an RFC 3339"),
        ({"variables": ["analysed_sst", "../../etc/passwd"]}, "has no variable ../../etc/passwd"),
        ({"variables": []}, "at least one variable"),
    ],
)
def test_hostile_input_is_refused_with_the_reason(
    catalog: DemoCatalog, arguments: dict[str, object], message: str
) -> None:
    given = {"variables": ["analysed_sst"]} | arguments
    with catalog.sessions() as session, pytest.raises(InvalidInput, match=message):
        request = build_request("timeseries", L4, given.pop("variables"), **given)  # type: ignore[arg-type]
        analyse(session, ADMIN, catalog.settings, request, "json")


def test_formats_an_operation_lacks_and_several_variables_in_json(catalog: DemoCatalog) -> None:
    with catalog.sessions() as session:
        with pytest.raises(InvalidInput, match="subset answers in netcdf, not 'png'"):
            analyse(session, ADMIN, catalog.settings, build_request("subset", L4, ["analysed_sst"]), "png")
        two = build_request("timeseries", MET, ["wind_speed", "air_temperature"], bbox=ATLANTIC)
        with pytest.raises(InvalidInput, match="shows one variable"):
            analyse(session, ADMIN, catalog.settings, two, "json")
        with pytest.raises(NotFound, match="no granule of demo-l4-sst"):
            analyse(
                session, ADMIN, catalog.settings, build_request("map", L4, ["analysed_sst"], time="2030-01-01"), "png"
            )


def test_real_l4_files_timeseries_matches_the_toolbox(catalog: DemoCatalog, tmp_path: Path) -> None:
    files = real_files("ghrsst-l4-ncei-avhrr-oi-glob") + real_files("ghrsst-l4-ostia-anom-glob")[:1]
    index_copies(catalog.engine, "real-avhrr", files[:2], tmp_path / "avhrr")
    index_copies(catalog.engine, "real-ostia", files[2:], tmp_path / "ostia")
    for dataset, variable in (("real-avhrr", "analysed_sst"), ("real-ostia", "sst_anomaly")):
        request = build_request("timeseries", dataset, [variable], bbox="-80,0,-10,60")
        ours = series(catalog, request)
        reference = stacked_area_mean(catalog, request)
        assert np.isfinite(ours[variable].values).all()
        # xarray decodes these files' float32 scale factors in float32; we unpack in float64: digits 8 and beyond.
        np.testing.assert_allclose(ours[variable].values, reference[variable].values, rtol=1e-7)
        with catalog.sessions() as session:
            paths = select(session, ADMIN, catalog.settings, request).paths
        np.testing.assert_allclose(
            ours[variable].values, numpy_area_mean(paths, variable, (-80, 0, -10, 60)), rtol=1e-6
        )
