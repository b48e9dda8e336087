"""Area means and point series against independent numpy sums, on synthetic grids, the demo archive and real files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

import dask.array
import numpy as np
import pytest
import xarray as xr

from nephelae.demo.archive import build_demo_archive
from nephelae.errors import InvalidInput
from nephelae.toolbox import area_mean, point_series
from tests.support.real_data import real_files


def _open_series(paths: Sequence[Path], engine: str | None = None) -> xr.Dataset:
    """Files of one series, which share their static variables: taken from the first file, not compared."""
    return xr.open_mfdataset(
        paths, combine="by_coords", data_vars="minimal", coords="minimal", compat="override", engine=engine
    )


def _numpy_area_mean(values: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The hand-weighted mean of each time step: sum(x w) / sum(w) over the valid cells only."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.broadcast_to(np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64))), values.shape[1:])
    valid = ~np.isnan(values)
    mean: np.ndarray = np.nansum(values * weights, axis=(1, 2)) / np.sum(weights * valid, axis=(1, 2))
    return mean


def _grid(lat: np.ndarray, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    lon = np.arange(-179.5, 180, 2.0)
    values = 280.0 + 20.0 * rng.random((4, lat.size, lon.size))
    values[:, :, :30] = np.nan  # a "continent"
    values[1, lat > 40, :] = np.nan  # sea ice on day 2 only: the weights must change with the day
    attrs = {"units": "kelvin", "long_name": "sea surface temperature", "standard_name": "sea_surface_temperature"}
    return xr.Dataset(
        {
            "sst": (("time", "lat", "lon"), values, attrs),
            "mask": (("time", "lat", "lon"), np.isnan(values).astype("int8"), {"flag_values": [0, 1]}),
            "depth": (("lat", "lon"), np.ones((lat.size, lon.size))),
        },
        coords={
            "time": np.arange("2020-01-01", "2020-01-05", dtype="datetime64[D]").astype("datetime64[ns]"),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )


@pytest.mark.parametrize("descending", [False, True], ids=["south-to-north", "north-to-south"])
def test_area_mean_of_a_regular_grid_with_gaps(descending: bool) -> None:
    lat = np.arange(-89.0, 90.0, 2.0)
    ds = _grid(lat[::-1] if descending else lat)
    out = area_mean(ds)
    assert list(out.data_vars) == ["sst"]  # the flag and the static variable are not averaged
    assert out["sst"].dims == ("time",)
    np.testing.assert_allclose(out["sst"].values, _numpy_area_mean(ds["sst"].values, ds["lat"].values[:, None]))
    assert out["sst"].attrs["units"] == "kelvin"
    assert out["sst"].attrs["standard_name"] == "sea_surface_temperature"
    assert out["sst"].attrs["cell_methods"] == "area: mean (weighted by cos latitude)"


def test_a_step_with_no_valid_cell_is_nan_and_a_flag_can_be_asked_for() -> None:
    ds = _grid(np.arange(-89.0, 90.0, 2.0))
    ds["sst"][2] = np.nan
    out = area_mean(ds, variables=["sst", "mask"])
    assert np.isnan(out["sst"].values[2]) and np.isfinite(out["sst"].values[[0, 1, 3]]).all()
    np.testing.assert_allclose(out["mask"].values, _numpy_area_mean(ds["mask"].values, ds["lat"].values[:, None]))


def test_area_mean_of_a_curvilinear_grid_weights_by_the_2d_latitude() -> None:
    rows, cols = np.meshgrid(np.arange(30), np.arange(40), indexing="ij")
    lat2d = -60.0 + rows * 4.0 + cols * 0.5  # rotated rows: latitude varies along both axes
    lon2d = 160.0 + cols * 1.0 - rows * 0.3
    rng = np.random.default_rng(1)
    values = 15.0 + rng.standard_normal((3, 30, 40))
    values[:, 5:9, 10:30] = np.nan
    ds = xr.Dataset(
        {"sst": (("time", "nj", "ni"), values, {"units": "celsius"})},
        coords={
            "time": np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[ns]"),
            "lat": (("nj", "ni"), lat2d, {"units": "degrees_north"}),
            "lon": (("nj", "ni"), lon2d, {"units": "degrees_east"}),
        },
    )
    out = area_mean(ds)
    assert out["sst"].dims == ("time",) and "lat" not in out.coords
    np.testing.assert_allclose(out["sst"].values, _numpy_area_mean(values, lat2d))


@pytest.fixture(scope="module")
def demo_l4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[xr.Dataset]:
    root = tmp_path_factory.mktemp("demo")
    build_demo_archive(root, start=dt.date(2020, 3, 1), days=2)
    with _open_series(sorted((root / "demo-l4-sst").rglob("*.nc"))) as ds:
        yield ds


def test_area_mean_of_the_demo_archive_is_lazy_and_right(demo_l4: xr.Dataset) -> None:
    out = area_mean(demo_l4, variables=["analysed_sst"])
    assert isinstance(out["analysed_sst"].data, dask.array.Array)  # nothing computed until asked
    expected = _numpy_area_mean(demo_l4["analysed_sst"].values, demo_l4["lat"].values[:, None])
    np.testing.assert_allclose(out["analysed_sst"].values, expected, rtol=1e-12)
    assert expected.min() > 271.0 and expected.max() < 305.0  # kelvin over the ocean, land excluded
    assert out["analysed_sst"].attrs["units"] == demo_l4["analysed_sst"].attrs["units"]
    assert out["time"].values.tolist() == demo_l4["time"].values.tolist()


@pytest.mark.parametrize(
    ("product", "variable"),
    [
        ("ghrsst-l4-mur25-glob", "analysed_sst"),
        ("ghrsst-l4-ostia-anom-glob", "sst_anomaly"),  # 0..360 longitudes, NetCDF-3, three days
        ("ghrsst-l4-gos-oisst-blacksea", "analysed_sst"),  # a regional grid, mostly land
    ],
)
def test_area_mean_of_real_grids(product: str, variable: str) -> None:
    with _open_series(real_files(product, "*.nc"), engine="netcdf4") as ds:
        out = area_mean(ds, variables=[variable]).compute()
        expected = _numpy_area_mean(ds[variable].values, ds["lat"].values[:, None])
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(out[variable].values, expected, rtol=1e-10)
    assert out[variable].attrs["units"] == ds[variable].attrs["units"]


def test_storage_attributes_do_not_follow_the_mean() -> None:
    ds = _grid(np.arange(-89.0, 90.0, 2.0))
    ds["sst"].attrs |= {"valid_range": np.array([-300, 4500], dtype="int16"), "_Unsigned": "false"}  # packed units
    attrs = area_mean(ds)["sst"].attrs
    assert "valid_range" not in attrs and "_Unsigned" not in attrs and attrs["units"] == "kelvin"


def test_area_mean_keeps_another_name_of_the_time_dimension() -> None:
    with _open_series(real_files("imos-gsla-australia", "*.nc")) as ds:  # TIME, 57..185 east
        out = area_mean(ds, variables=["GSLA"]).compute()
        expected = _numpy_area_mean(ds["GSLA"].values, ds["LATITUDE"].values[:, None])
    assert out["GSLA"].dims == ("TIME",) and out.sizes["TIME"] == 2
    np.testing.assert_allclose(out["GSLA"].values, expected, rtol=1e-10)


@pytest.mark.parametrize("chunks", [None, {}], ids=["numpy", "dask"])
def test_area_mean_of_a_real_swath(chunks: dict[str, int] | None) -> None:
    with xr.open_dataset(real_files("ghrsst-l2p-viirs-npp-navo")[0], chunks=chunks) as ds:
        out = area_mean(ds, variables=["sea_surface_temperature"]).compute()
        expected = _numpy_area_mean(ds["sea_surface_temperature"].values, ds["lat"].values)
    np.testing.assert_allclose(out["sea_surface_temperature"].values, expected, rtol=1e-10)
    assert 260 < expected[0] < 300


def test_point_series_takes_the_nearest_grid_point() -> None:
    ds = _grid(np.arange(-89.0, 90.0, 2.0)).assign_coords(lon=np.arange(0.5, 360, 2.0))  # 0..360 longitudes
    out = point_series(ds, lon=-21.4, lat=10.8)  # -21.4 is 338.6: nearest to 338.5 (not 340.5), latitude 11
    assert float(out["lon"]) == 338.5 and float(out["lat"]) == 11.0
    np.testing.assert_array_equal(out["sst"].values, ds["sst"].sel(lat=11.0, lon=338.5).values)
    assert "depth" not in out  # only the series


def test_point_series_on_a_swath() -> None:
    with xr.open_dataset(real_files("ghrsst-l2p-viirs-npp-navo")[0]) as ds:
        lat, lon = ds["lat"].values, ds["lon"].values
        out = point_series(ds, lon=float(lon[300, 500]) + 0.001, lat=float(lat[300, 500]))
        expected = ds["sea_surface_temperature"].values[:, 300, 500]
    np.testing.assert_array_equal(out["sea_surface_temperature"].values, expected)


def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    ds = _grid(np.arange(-89.0, 90.0, 2.0))
    with pytest.raises(InvalidInput, match="'time' dimension"):
        area_mean(ds.isel(time=0))
    with pytest.raises(InvalidInput, match="empty time axis"):
        area_mean(ds.isel(time=slice(0, 0)))
    with pytest.raises(InvalidInput, match="no variable wind"):
        area_mean(ds, variables=["wind"])
    with pytest.raises(InvalidInput, match="depth is not one"):
        area_mean(ds, variables=["depth"])
    with pytest.raises(InvalidInput, match="no latitude coordinate"):
        area_mean(ds.drop_vars("lat"))
    with pytest.raises(InvalidInput, match="not a longitude and a latitude"):
        point_series(ds, lon=0.0, lat=95.0)
