"""Resampling, climatologies and anomalies against independent numpy computations, synthetic and real."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nephelae.demo.archive import build_demo_archive
from nephelae.errors import InvalidInput
from nephelae.toolbox import anomaly, climatology, resample_time
from tests.support.real_data import real_files


def _open_series(paths: Sequence[Path], engine: str | None = None) -> xr.Dataset:
    """Files of one series, which share their static variables: taken from the first file, not compared."""
    return xr.open_mfdataset(
        paths, combine="by_coords", data_vars="minimal", coords="minimal", compat="override", engine=engine
    )


YEARS = (2019, 2020, 2021)  # 2020 is a leap year


def _seasonal(seed: int = 0) -> tuple[xr.Dataset, np.ndarray]:
    """Three years of daily fields: a known seasonal cycle per month on top of a map, plus noise and gaps."""
    time = np.arange(f"{YEARS[0]}-01-01", f"{YEARS[-1] + 1}-01-01", dtype="datetime64[D]")
    months = time.astype("datetime64[M]").astype(int) % 12 + 1
    cycle = 3.0 * np.cos(2 * np.pi * (np.arange(1, 13) - 2) / 12)  # warmest in February
    base = 290.0 + np.linspace(0.0, 5.0, 12).reshape(3, 4)
    rng = np.random.default_rng(seed)
    values = base + cycle[months - 1][:, None, None] + 0.1 * rng.standard_normal((time.size, 3, 4))
    values[rng.random(values.shape) < 0.05] = np.nan  # clouds
    attrs = {"units": "kelvin", "long_name": "sea surface temperature", "standard_name": "sea_surface_temperature"}
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), values, attrs), "depth": (("lat", "lon"), np.ones((3, 4)))},
        coords={"time": time.astype("datetime64[ns]"), "lat": [10.0, 20.0, 30.0], "lon": [0.0, 1.0, 2.0, 3.0]},
    )
    return ds.chunk({"time": 100}), cycle


def test_monthly_climatology_gives_back_the_seasonal_cycle_and_a_zero_mean_anomaly() -> None:
    ds, cycle = _seasonal()
    clim = climatology(ds, "month")
    assert clim["sst"].dims == ("month", "lat", "lon") and clim["month"].values.tolist() == list(range(1, 13))
    values, months = ds["sst"].values, ds["time"].dt.month.values
    expected = np.stack([np.nanmean(values[months == m], axis=0) for m in range(1, 13)])
    np.testing.assert_allclose(clim["sst"].values, expected, rtol=1e-12)
    recovered = clim["sst"].mean(["lat", "lon"]).values - clim["sst"].mean().values
    np.testing.assert_allclose(recovered, cycle - cycle.mean(), atol=0.02)
    assert clim["sst"].attrs["cell_methods"] == "time: mean within years time: mean over years"
    assert clim["sst"].attrs["units"] == "kelvin"

    anomalies = anomaly(ds, clim, "month")
    np.testing.assert_allclose(anomalies["sst"].values, values - expected[months - 1], atol=1e-9, equal_nan=True)
    per_month = anomalies["sst"].groupby("time.month").mean(...).values
    np.testing.assert_allclose(per_month, 0.0, atol=1e-9)  # each month's anomalies average to zero
    assert anomalies["sst"].attrs["units"] == "kelvin"
    assert anomalies["sst"].attrs["long_name"] == "anomaly of sea surface temperature"
    assert "standard_name" not in anomalies["sst"].attrs
    assert list(anomalies.data_vars) == ["sst"]


def test_climatology_bounds_follow_cf_7_4() -> None:
    ds, _ = _seasonal()
    clim = climatology(ds.sel(time=slice("2019-03-10", "2021-06-20")), "month")
    assert clim["month"].attrs["climatology"] == "climatology_bounds"
    bounds = clim["climatology_bounds"].values.astype("datetime64[D]").astype(str)
    assert bounds[0].tolist() == ["2020-01-01", "2021-02-01"]  # January: 2020 and 2021
    assert bounds[2].tolist() == ["2019-03-01", "2021-04-01"]
    assert bounds[11].tolist() == ["2019-12-01", "2021-01-01"]


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # a cell cloudy on that day every year
def test_day_of_year_climatology_and_anomaly() -> None:
    ds, _ = _seasonal()
    clim = climatology(ds, "dayofyear")
    assert clim.sizes["dayofyear"] == 366
    values, days = ds["sst"].values, ds["time"].dt.dayofyear.values
    expected = np.stack([np.nanmean(values[days == d], axis=0) for d in range(1, 367)])
    np.testing.assert_allclose(clim["sst"].values, expected, rtol=1e-12)
    assert clim["climatology_bounds"].values[365].astype("datetime64[D]").astype(str).tolist() == [
        "2020-12-31",
        "2021-01-01",
    ]  # day 366 exists only in 2020
    anomalies = anomaly(ds, clim, "dayofyear")
    np.testing.assert_allclose(anomalies["sst"].values, values - expected[days - 1], atol=1e-9, equal_nan=True)


def _sum_or_nan(values: np.ndarray, axis: int) -> np.ndarray:
    """np.nansum, but NaN where every value is missing (a sum of nothing is unknown, not 0)."""
    total: np.ndarray = np.where(np.isnan(values).all(axis=axis), np.nan, np.nansum(values, axis=axis))
    return total


@pytest.mark.parametrize(
    ("freq", "how", "unit", "reduce"),
    [("month", "mean", "M", np.nanmean), ("year", "max", "Y", np.nanmax), ("day", "sum", "D", _sum_or_nan)],
)
def test_resample_time_against_numpy(freq: str, how: str, unit: str, reduce: Callable[..., np.ndarray]) -> None:
    ds, _ = _seasonal()
    out = resample_time(ds.isel(time=slice(0, 400)), freq, how)  # type: ignore[arg-type]
    periods = ds["time"].values[:400].astype(f"datetime64[{unit}]")
    starts = np.unique(periods)
    expected = np.stack([reduce(ds["sst"].values[:400][periods == start], axis=0) for start in starts])
    np.testing.assert_allclose(out["sst"].values, expected, rtol=1e-12)
    assert out["time"].values.tolist() == starts.astype("datetime64[ns]").tolist()
    np.testing.assert_array_equal(out["time_bnds"].values[:, 1], (starts + 1).astype("datetime64[ns]"))
    assert out["time"].attrs["bounds"] == "time_bnds"
    cf_name = {"mean": "mean", "max": "maximum", "sum": "sum"}[how]
    assert out["sst"].attrs["cell_methods"] == f"time: {cf_name}"
    assert "depth" in out and out["depth"].dims == ("lat", "lon")  # static fields pass through


def test_a_period_without_data_aggregates_to_nan() -> None:
    ds, _ = _seasonal()
    ds["sst"] = ds["sst"].where(ds["time"].dt.month != 2)  # a February lost
    for how in ("mean", "sum", "max"):
        out = resample_time(ds.sel(time=slice("2019-01-01", "2019-03-31")), "month", how)
        assert np.isnan(out["sst"].values[1]).all() and np.isfinite(out["sst"].values[[0, 2]]).all()


def test_results_write_to_cf_netcdf_and_read_back(tmp_path: Path) -> None:
    ds, _ = _seasonal()
    part = ds.sel(time=slice("2019-01-01", "2019-05-10"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. xarray's warning about time and bounds in different units
        resample_time(part, "month").to_netcdf(tmp_path / "monthly.nc")
        climatology(part, "month").to_netcdf(tmp_path / "climatology.nc")
    with xr.open_dataset(tmp_path / "monthly.nc") as monthly:
        assert monthly["time_bnds"].values[4].astype("datetime64[D]").astype(str).tolist() == [
            "2019-05-01",
            "2019-06-01",
        ]
    with xr.open_dataset(tmp_path / "climatology.nc") as clim:
        assert np.isnat(clim["climatology_bounds"].values[5]).all()  # June has no data
        assert clim["sst"].attrs["cell_methods"] == "time: mean within years time: mean over years"


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # land stays NaN in numpy too
def test_resample_a_real_series_that_has_its_own_time_bounds() -> None:
    with _open_series(real_files("ghrsst-l4-ncei-avhrr-oi-glob", "*.nc")) as ds:
        out = resample_time(ds, "month").compute()
        expected = np.nanmean(ds["analysed_sst"].values, axis=0)
    np.testing.assert_allclose(out["analysed_sst"].values[0], expected, rtol=1e-12, equal_nan=True)
    assert out["time_bnds"].values.astype("datetime64[D]").astype(str).tolist() == [["2015-11-01", "2015-12-01"]]
    assert out["analysed_sst"].attrs["units"] == ds["analysed_sst"].attrs["units"]
    assert "mask" not in out  # a flag variable is not averaged


def test_demo_winds_climatology(tmp_path: Path) -> None:
    build_demo_archive(tmp_path, start=dt.date(2020, 1, 31), days=2)  # across a month boundary
    with _open_series(sorted((tmp_path / "demo-surface-met").rglob("*.nc"))) as ds:
        clim = climatology(ds, "month")
        values, months = ds["wind_speed"].values, ds["time"].dt.month.values
    np.testing.assert_allclose(clim["wind_speed"].sel(month=1).values, values[months == 1][0])
    np.testing.assert_allclose(clim["wind_speed"].sel(month=2).values, values[months == 2][0])
    assert np.isnan(clim["wind_speed"].sel(month=3).values).all()


def test_a_time_dimension_under_another_name() -> None:
    ds, _ = _seasonal()
    renamed = ds.rename({"time": "TIME"})
    renamed["TIME"].attrs["standard_name"] = "time"
    clim = climatology(renamed, "month")
    xr.testing.assert_allclose(clim["sst"], climatology(ds, "month")["sst"])
    assert anomaly(renamed, clim, "month")["sst"].dims == ("TIME", "lat", "lon")
    out = resample_time(renamed, "year")
    assert out["sst"].dims == ("TIME", "lat", "lon") and out["time_bnds"].dims == ("TIME", "nv")


def test_bad_input_is_refused_with_a_clear_message() -> None:
    ds, _ = _seasonal()
    clim = climatology(ds, "month")
    with pytest.raises(InvalidInput, match="'time' dimension"):
        climatology(ds.isel(time=0), "month")
    with pytest.raises(InvalidInput, match="empty time axis"):
        climatology(ds.isel(time=slice(0, 0)), "month")
    with pytest.raises(InvalidInput, match="unknown climatology period 'season'"):
        climatology(ds, "season")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unknown frequency 'week'"):
        resample_time(ds, "week")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unknown aggregation 'mode'"):
        resample_time(ds, "month", "mode")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="no numeric variable"):
        resample_time(xr.Dataset(coords={"time": ds["time"]}), "month")
    with pytest.raises(InvalidInput, match="period='dayofyear'"):
        anomaly(ds, clim, "dayofyear")
    regional = anomaly(ds.isel(lat=slice(0, 2)), clim, "month")  # a global climatology serves a subset
    xr.testing.assert_allclose(regional["sst"], anomaly(ds, clim, "month")["sst"].isel(lat=slice(0, 2)))
    with pytest.raises(InvalidInput, match=r"climatology of sst lacks lat=20\.0 of the data"):
        anomaly(ds, clim.isel(lat=[0, 2]), "month")
    with pytest.raises(InvalidInput, match="share no variable"):
        anomaly(ds.rename({"sst": "wind"}), clim, "month")


def test_a_time_axis_without_dates_is_refused_with_the_reason() -> None:
    # A file with a time dimension but no time variable (dated by its name): `.dt` of plain indices, AttributeError.
    undated = xr.Dataset({"sla": (("time", "lat"), np.zeros((2, 3)))})
    with pytest.raises(InvalidInput, match="time dimension has no coordinate"):
        climatology(undated, "month")
