"""Subsetting against independent numpy selections, on real files and on synthetic grids and swaths."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr

from nephelae.errors import InvalidInput
from nephelae.toolbox import subset
from tests.support.real_data import real_files


def _grid(lon: np.ndarray) -> xr.Dataset:
    lat = np.arange(-89.5, 90, 1.0)
    times = np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[ns]")
    values = np.arange(times.size * lat.size * lon.size, dtype=float).reshape(times.size, lat.size, lon.size)
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), values), "err": (("time", "lat", "lon"), values * 0)},
        coords={
            "time": times,
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )


@pytest.mark.parametrize("lon", [np.arange(-179.5, 180, 1.0), np.arange(0.5, 360, 1.0)], ids=["-180..180", "0..360"])
def test_grid_box_and_time(lon: np.ndarray) -> None:
    ds = _grid(lon)
    out = subset(ds, bbox=(-80, 0, 0, 60), time=(dt.datetime(2020, 1, 2, tzinfo=dt.UTC), None), variables=["sst"])
    lon180 = ((out.lon.values + 180) % 360) - 180
    assert list(out.data_vars) == ["sst"]
    assert out.time.size == 2
    assert out.lat.min() >= 0 and out.lat.max() <= 60 and out.lat.size == 60
    assert lon180.min() >= -80 and lon180.max() <= 0 and out.lon.size == 80
    expected = ds.sst.values[1:, 90:150][
        :, :, np.flatnonzero(((lon + 180) % 360 - 180 >= -80) & ((lon + 180) % 360 - 180 <= 0))
    ]
    np.testing.assert_array_equal(np.sort(out.sst.values, axis=2), np.sort(expected, axis=2))


def test_grid_box_across_the_antimeridian_is_contiguous() -> None:
    ds = _grid(np.arange(-179.5, 180, 1.0))
    out = subset(ds, bbox=(170, -10, -170, 10))
    assert out.lon.values.tolist() == [*np.arange(170.5, 180, 1.0), *np.arange(-179.5, -170, 1.0)]


def test_swath_is_masked_and_cropped() -> None:
    rows, cols = np.meshgrid(np.arange(50), np.arange(20), indexing="ij")
    lat, lon = -20.0 + rows * 0.5, 170.0 + cols * 0.5  # crosses 180 at column 20 -> wraps below
    lon = ((lon + 180) % 360) - 180
    ds = xr.Dataset(
        {"sst": (("nj", "ni"), rows * 100.0 + cols)},
        coords={
            "lat": (("nj", "ni"), lat, {"units": "degrees_north"}),
            "lon": (("nj", "ni"), lon, {"units": "degrees_east"}),
        },
    )
    out = subset(ds, bbox=(175, -10, -178, 0))
    inside = (lat >= -10) & (lat <= 0) & ((lon >= 175) | (lon <= -178))
    assert int(out.sst.notnull().sum()) == int(inside.sum())
    assert np.nansum(out.sst.values) == ds.sst.values[inside].sum()


def test_unknown_variable_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="no variable salinity"):
        subset(_grid(np.arange(-179.5, 180, 1.0)), variables=["salinity"])


def test_real_ostia_file_in_0_360_longitudes() -> None:
    with xr.open_dataset(real_files("ghrsst-l4-ostia-anom-glob", "*.nc")[0], engine="netcdf4", chunks={}) as ds:
        out = subset(ds, bbox=(-10, 40, 5, 50), variables=["analysed_sst"])
        assert out.analysed_sst.chunks is not None  # still lazy
        values = out.analysed_sst.values
        lon180 = ((ds.lon.values + 180) % 360) - 180
        columns = np.flatnonzero((lon180 >= -10) & (lon180 <= 5))
        rows = np.flatnonzero((ds.lat.values >= 40) & (ds.lat.values <= 50))
        expected = ds.analysed_sst.values[:, rows][:, :, columns]
    assert values.shape == (1, 40, 60)
    np.testing.assert_allclose(np.nansum(values), np.nansum(expected))


def test_a_model_calendar_is_subset_by_its_dates() -> None:
    # noleap dates (cftime objects) could not be compared with the interval: TypeError.
    times = xr.date_range("2001-02-20", periods=20, freq="D", calendar="noleap", use_cftime=True)
    ds = xr.Dataset({"sst": ("time", np.arange(20.0))}, coords={"time": times})
    start = dt.datetime(2001, 2, 28, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 27 February, 23:00 UTC
    kept = subset(ds, time=(start, dt.datetime(2001, 3, 2, tzinfo=dt.UTC)))
    assert [moment.isoformat() for moment in kept["time"].values] == [
        "2001-02-28T00:00:00",
        "2001-03-01T00:00:00",
        "2001-03-02T00:00:00",
    ]
    assert subset(ds, time=(None, dt.datetime(2001, 2, 21))).sizes["time"] == 2


@pytest.mark.parametrize("lon", [np.arange(-179.5, 180, 1.0), np.arange(0.5, 360, 1.0)], ids=["-180..180", "0..360"])
def test_a_box_given_in_0_to_360_is_the_same_box(lon: np.ndarray) -> None:
    # The processors accept longitudes up to 360: (100, 260) is the Pacific, not 100..180 alone.
    ds = _grid(lon)
    pacific = subset(ds, bbox=(100, -10, 260, 10))
    assert pacific.sizes["lon"] == 160
    np.testing.assert_array_equal(pacific["sst"].values, subset(ds, bbox=(100, -10, -100, 10))["sst"].values)
    assert subset(ds, bbox=(190, -10, 200, 10)).sizes["lon"] == 10
    assert subset(ds, bbox=(0, -10, 360, 10)).sizes["lon"] == 360
