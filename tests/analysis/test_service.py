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


def test_the_size_counts_every_time_step_of_a_granule(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One DUACS file holds 91 daily fields of 128 x 344 cells: 4,006,912 values, not the 44,032 of one step.
    small = demo_catalog(tmp_path_factory, analysis_max_cells=100_000)
    index_copies(
        small.engine,
        "real-duacs-med",
        real_files("duacs-l4-sea-level", "dt_med_*2005T2.nc"),
        tmp_path_factory.mktemp("m"),
    )
    request = build_request("timeseries", "real-duacs-med", ["adt"])
    with small.sessions() as session, pytest.raises(RequestTooLarge) as refused:
        select(session, ADMIN, small.settings, request)
    small.engine.dispose()
    assert f"{91 * 128 * 344:,} values" in refused.value.detail


def test_codes_outside_the_valid_range_are_missing(catalog: DemoCatalog, tmp_path: Path) -> None:
    # RSS SSMIS winds: no _FillValue; land, ice, rain and no-data are codes 251..255 (51 m/s once scaled), above the
    # valid_range [0, 50] m/s given in unpacked units. Over Europe they made a mean wind of 44 m/s.
    files = real_files("rss-ssmis-f16-daily")
    index_copies(catalog.engine, "real-ssmis", files, tmp_path / "ssmis")
    request = build_request("timeseries", "real-ssmis", ["wind_speed"], bbox="-10,35,30,60")
    with netCDF4.Dataset(files[0]) as dataset:
        lat, lon = dataset["latitude"][:].astype(float), dataset["longitude"][:].astype(float)
        dataset["wind_speed"].set_auto_maskandscale(False)
        raw = dataset["wind_speed"][:].astype(float)
    lon = (lon + 180.0) % 360.0 - 180.0
    rows, columns = (lat >= 35) & (lat <= 60), (lon >= -10) & (lon <= 30)
    window = raw[:, rows][:, :, columns]
    speed = np.ma.masked_where(window > 250, window * 0.2)  # 250 is 50 m/s, the top of the range
    weights = np.broadcast_to(np.cos(np.deg2rad(lat[rows]))[:, None], speed.shape[1:])
    expected = [float(np.ma.average(step, weights=weights)) for step in speed]
    ours = series(catalog, request)
    np.testing.assert_allclose(ours["wind_speed"].values, expected, rtol=1e-6)
    assert (ours["wind_speed"].values < 20).all()
    with catalog.sessions() as session:  # the xarray path (maps, climatologies, swaths) masks the same cells
        mapped = build_request("map", "real-ssmis", ["wind_speed"], bbox="-10,35,30,60")
        field = analyse(session, ADMIN, catalog.settings, mapped, "netcdf")
    assert field.path is not None
    with xr.open_dataset(field.path) as mean:
        assert float(mean["wind_speed"].max()) <= 50.0
    field.path.unlink()


def test_granules_on_another_grid_are_read_on_their_own_grid(catalog: DemoCatalog, tmp_path: Path) -> None:
    # An archive whose grid changed (here: -180..180 longitudes, then 0..360): the first granule's index ranges
    # point elsewhere in the others, so each granule whose grid differs is planned again.
    files = real_files("ghrsst-l4-ncei-avhrr-oi-glob")[:1] + real_files("ghrsst-l4-ostia-anom-glob")[:1]
    index_copies(catalog.engine, "real-mixed", files, tmp_path / "mixed")
    request = build_request("timeseries", "real-mixed", ["analysed_sst"], bbox="-80,0,-10,60")
    ours = series(catalog, request)
    with catalog.sessions() as session:
        paths = select(session, ADMIN, catalog.settings, request).paths
    expected = numpy_area_mean(paths, "analysed_sst", (-80, 0, -10, 60))
    np.testing.assert_allclose(ours["analysed_sst"].values, expected, rtol=1e-6)


def test_a_noleap_calendar_gives_a_series_labelled_with_its_dates(catalog: DemoCatalog, tmp_path: Path) -> None:
    # Model and reanalysis archives often count days on a 365-day calendar; the series failed with "illegal calendar".
    written = tmp_path / "written"
    written.mkdir()
    for day in range(3):
        coords = {
            "time": ("time", [58.5 + day], {"units": "days since 2001-01-01", "calendar": "noleap"}),
            "lat": ("lat", np.arange(4.0) * 10, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", np.arange(8.0) * 10, {"units": "degrees_east", "standard_name": "longitude"}),
        }
        field = xr.Dataset({"sst": (("time", "lat", "lon"), np.full((1, 4, 8), 280.0 + day), {"units": "K"})}, coords)
        field.to_netcdf(written / f"model-{day}.nc")
    index_copies(catalog.engine, "model-noleap", sorted(written.glob("*.nc")), tmp_path / "model")
    with catalog.sessions() as session:
        answer = analyse(session, ADMIN, catalog.settings, build_request("timeseries", "model-noleap", ["sst"]), "json")
    assert answer.content is not None
    points = json.loads(answer.content)["points"]
    assert [point["time"] for point in points] == [
        "2001-02-28T12:00:00Z",
        "2001-03-01T12:00:00Z",
        "2001-03-02T12:00:00Z",
    ]
    np.testing.assert_allclose([point["value"] for point in points], [280.0, 281.0, 282.0])


def test_variables_in_groups_are_sized_too(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Sentinel-6 keeps its data in groups: the estimate did not find `data_01/ku/ssha` and counted 1 value a granule.
    small = demo_catalog(tmp_path_factory, analysis_max_cells=1_000)
    index_copies(small.engine, "real-s6", real_files("sentinel6-p4-l2-hr"), tmp_path_factory.mktemp("s6"))
    request = build_request("timeseries", "real-s6", ["data_01/ku/ssha"])
    with small.sessions() as session, pytest.raises(RequestTooLarge) as refused:
        select(session, ADMIN, small.settings, request)
    small.engine.dispose()
    assert "1,200 values" in refused.value.detail  # 2 granules x 600 one-second measurements


def test_unsigned_bytes_of_netcdf3_are_read_as_unsigned(catalog: DemoCatalog, tmp_path: Path) -> None:
    # NetCDF-3 has no unsigned byte: `_Unsigned = "true"` on a byte says 200 is stored as -56 (and the fill 255 as -1).
    written = tmp_path / "written"
    written.mkdir()
    path = written / "chlorophyll-20200101.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as dataset:
        for name, size in (("time", 1), ("lat", 4), ("lon", 8)):
            dataset.createDimension(name, size)
        time = dataset.createVariable("time", "f8", ("time",))
        time.units, time[:] = "days since 2020-01-01", [0.5]
        lat = dataset.createVariable("lat", "f4", ("lat",))
        lat.units, lat.standard_name, lat[:] = "degrees_north", "latitude", np.arange(4.0)
        lon = dataset.createVariable("lon", "f4", ("lon",))
        lon.units, lon.standard_name, lon[:] = "degrees_east", "longitude", np.arange(8.0)
        packed = dataset.createVariable("index", "i1", ("time", "lat", "lon"), fill_value=np.int8(-1))
        packed.set_auto_maskandscale(False)
        # The range 0..250 in the stored signed type: 250 is -6.
        packed.setncatts(
            {"_Unsigned": "true", "scale_factor": 0.1, "units": "1", "valid_min": np.int8(0), "valid_max": np.int8(-6)}
        )
        stored = np.full((1, 4, 8), -56, dtype=np.int8)  # 200: 20.0 once scaled
        stored[0, 0, :] = -1  # missing
        packed[:] = stored
    index_copies(catalog.engine, "unsigned-bytes", [path], tmp_path / "bytes")
    request = build_request("timeseries", "unsigned-bytes", ["index"])
    ours = series(catalog, request)
    np.testing.assert_allclose(ours["index"].values, [20.0])
    np.testing.assert_allclose(stacked_area_mean(catalog, request)["index"].values, [20.0])
    with catalog.sessions() as session:  # the xarray path reads the range as unsigned too
        field = analyse(session, ADMIN, catalog.settings, build_request("map", "unsigned-bytes", ["index"]), "netcdf")
    assert field.path is not None
    with xr.open_dataset(field.path) as mean:
        assert np.isnan(mean["index"][0]).all() and (mean["index"][1:] == 20.0).all()
    field.path.unlink()


def test_granules_dated_only_by_their_attributes_take_the_catalog_dates(catalog: DemoCatalog, tmp_path: Path) -> None:
    # This DUACS file has a time dimension but no time variable: KeyError 'time' (series), AttributeError (climatology).
    index_copies(catalog.engine, "real-undated", real_files("duacs-l4-sea-level", "dt_med_*20160515*"), tmp_path / "u")
    with catalog.sessions() as session:
        answer = analyse(session, ADMIN, catalog.settings, build_request("timeseries", "real-undated", ["sla"]), "json")
        assert answer.content is not None
        points = json.loads(answer.content)["points"]
        assert [point["time"] for point in points] == ["2016-05-15T00:00:00Z"] and points[0]["value"] is not None
        request = build_request("climatology", "real-undated", ["sla"], time="2016-05-15")
        clim = analyse(session, ADMIN, catalog.settings, request, "netcdf")
    assert clim.path is not None
    with xr.open_dataset(clim.path) as result:
        assert np.isfinite(result["sla"].sel(month=5)).any() and np.isnan(result["sla"].sel(month=4)).all()
    clim.path.unlink()
