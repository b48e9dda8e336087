"""Temporal aggregation, climatologies and anomalies, with the CF metadata that says what was done (CF 7.3, 7.4)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Literal, get_args

import numpy as np
import xarray as xr

from nephelae.errors import InvalidInput
from nephelae.toolbox.measures import STORAGE_ATTRIBUTES, measured_variables, with_cell_method, with_time_named_time

Frequency = Literal["day", "month", "year"]
Aggregation = Literal["mean", "min", "max", "sum", "median"]
Period = Literal["month", "dayofyear"]

# pandas rule of each frequency, and the numpy unit whose step is one period (for the bounds).
_FREQUENCIES = {"day": ("1D", "D"), "month": ("MS", "M"), "year": ("YS", "Y")}
# CF cell_methods names of the aggregations (CF appendix E).
_CF_METHODS = {"mean": "mean", "min": "minimum", "max": "maximum", "sum": "sum", "median": "median"}
_PERIOD_LENGTH = {"month": 12, "dayofyear": 366}
_PERIOD_NAMES = {"month": "month of the year", "dayofyear": "day of the year"}
CLIMATOLOGY_METHOD = "time: mean within years time: mean over years"


def resample_time(ds: xr.Dataset, freq: Frequency, how: Aggregation = "mean") -> xr.Dataset:
    """Aggregate each variable with a time dimension by day, month or year.

    Each output time is the start of its period; `time_bnds` holds [start, start of the next period), and each
    variable's cell_methods gains e.g. `time: mean`. Variables without a time dimension pass through unchanged.
    """
    if freq not in _FREQUENCIES:
        raise InvalidInput(f"unknown frequency {freq!r}; use one of: {', '.join(_FREQUENCIES)}")
    if how not in _CF_METHODS:
        raise InvalidInput(f"unknown aggregation {how!r}; use one of: {', '.join(_CF_METHODS)}")
    ds, time_name = _with_dates(ds, "resampling")
    names = measured_variables(ds, None, ["time"], "resampling")
    rule = _FREQUENCIES[freq][0]
    grouped = ds[names].resample(time=rule)
    # A period with no valid value sums to NaN, not to 0.
    options = {"min_count": 1} if how == "sum" else {}
    out: xr.Dataset = getattr(grouped, how)(keep_attrs=True, **options)
    for name in names:
        out[name].attrs = with_cell_method(ds[name].attrs, f"time: {_CF_METHODS[how]}")
    static = [name for name, da in ds.data_vars.items() if "time" not in da.dims]
    out = out.assign(ds[static].data_vars)
    out["time_bnds"] = _period_bounds(out["time"], _FREQUENCIES[freq][1])
    out["time"].attrs = {**ds["time"].attrs, "bounds": "time_bnds"}
    # One unit for the time and its bounds in the file, as CF wants (xarray would pick one for each otherwise).
    out["time"].encoding = {"units": ds["time"].encoding.get("units", "seconds since 1970-01-01 00:00:00")}
    out.attrs = dict(ds.attrs)
    return out.rename({"time": time_name})


def _with_dates(ds: xr.Dataset, operation: str) -> tuple[xr.Dataset, Hashable]:
    """`with_time_named_time`, and the dates of the steps, which periods are made of."""
    ds, time_name = with_time_named_time(ds, operation)
    if "time" not in ds.coords:
        raise InvalidInput(
            f"{operation} needs the dates of the time steps; the dataset's {time_name} dimension has no coordinate "
            "variable"
        )
    return ds, time_name


def _period_bounds(time: xr.DataArray, unit: str) -> xr.DataArray:
    starts = time.values.astype(f"datetime64[{unit}]")
    bounds = np.stack([starts, starts + 1], axis=1).astype("datetime64[ns]")
    return xr.DataArray(bounds, dims=("time", "nv"), coords={"time": time})


def climatology(ds: xr.Dataset, period: Period) -> xr.Dataset:
    """The mean of each variable with a time dimension for each month (1..12) or day of the year (1..366).

    The result has a `month` or `dayofyear` dimension covering the whole range (NaN where the data has no such
    period) and, per CF 7.4, a `climatology_bounds` variable giving for each entry the first and last period
    averaged. Days of the year are counted as xarray does: from 1 January, so 1 March is day 60 or 61.
    """
    _check_period(period)
    ds, _ = _with_dates(ds, "climatology")
    names = measured_variables(ds, None, ["time"], "climatology")
    key = ds["time"].dt.month if period == "month" else ds["time"].dt.dayofyear
    entries = np.arange(1, _PERIOD_LENGTH[period] + 1)
    grouped = ds[names].groupby(key.rename(period))
    clim = grouped.mean("time", keep_attrs=True).reindex({period: entries})
    for name in names:
        clim[name].attrs = with_cell_method(ds[name].attrs, CLIMATOLOGY_METHOD)
    clim["climatology_bounds"] = _climatology_bounds(ds["time"], key, period, entries)
    clim[period].attrs = {"long_name": _PERIOD_NAMES[period], "climatology": "climatology_bounds"}
    clim.attrs = dict(ds.attrs)
    return clim


def _check_period(period: str) -> None:
    if period not in get_args(Period):
        raise InvalidInput(f"unknown climatology period {period!r}; use one of: {', '.join(get_args(Period))}")


def _climatology_bounds(time: xr.DataArray, key: xr.DataArray, period: str, entries: np.ndarray) -> xr.DataArray:
    """For each entry, the start of its first occurrence and the end of its last one in the data (CF 7.4)."""
    unit = "M" if period == "month" else "D"
    starts = time.values.astype(f"datetime64[{unit}]")
    ticks = starts.astype("int64")  # periods since 1970, so numpy's ufunc.at can take minima and maxima per entry
    first = np.full(entries.size + 1, np.iinfo("int64").max)
    last = np.full(entries.size + 1, np.iinfo("int64").min)
    np.minimum.at(first, key.values, ticks)
    np.maximum.at(last, key.values, ticks)
    seen = first[1:] <= last[1:]
    lower = np.where(seen, first[1:], 0).astype(f"datetime64[{unit}]")
    upper = np.where(seen, last[1:], 0).astype(f"datetime64[{unit}]") + 1
    bounds = np.stack([lower, upper], axis=1).astype("datetime64[ns]")
    bounds[~seen] = np.datetime64("NaT")  # an entry the data never reaches
    return xr.DataArray(bounds, dims=(period, "nv"), coords={period: entries})


def anomaly(ds: xr.Dataset, clim: xr.Dataset, period: Period) -> xr.Dataset:
    """Each variable of `ds` minus the entry of `clim` (from `climatology`) for its month or day of the year.

    Only variables present in both are kept; units stay, long_name becomes "anomaly of ...", and standard_name
    and valid ranges are dropped since they described the quantity, not its departure from normal.
    """
    _check_period(period)
    ds, time_name = _with_dates(ds, "anomaly")
    if period not in clim.dims:
        raise InvalidInput(f"the climatology has no {period!r} dimension: compute it with period={period!r}")
    names = [name for name in measured_variables(ds, None, ["time"], "anomaly") if name in clim.data_vars]
    if not names:
        raise InvalidInput("the dataset and the climatology share no variable: compute the climatology from it")
    key = ds["time"].dt.month if period == "month" else ds["time"].dt.dayofyear
    out = xr.Dataset(attrs=dict(ds.attrs))
    for name in names:
        normal = _covering(ds[name], clim[name].sel({period: key}).drop_vars(period))
        out[name] = ds[name] - normal
        out[name].attrs = _anomaly_attrs(ds[name].attrs)
    return out.rename({"time": time_name})


def _covering(value: xr.DataArray, normal: xr.DataArray) -> xr.DataArray:
    """`normal`, checked to have every grid cell of `value` (a global climatology serves a regional subset)."""
    for dim in value.dims:
        if dim != "time" and dim in value.indexes and dim in normal.indexes:
            lacking = ~np.asarray(value.indexes[dim].isin(normal.indexes[dim]))
            if lacking.any():
                raise InvalidInput(
                    f"the climatology of {value.name} lacks {dim}={value[dim].values[lacking][0]} of the data: "
                    "compute it from the same dataset over the same or a larger area"
                )
    return normal


def _anomaly_attrs(attrs: Mapping[Any, Any]) -> dict[Any, Any]:
    dropped = ("standard_name", *STORAGE_ATTRIBUTES)  # they describe the quantity, not its anomaly
    kept = {key: value for key, value in attrs.items() if key not in dropped}
    kept["long_name"] = f"anomaly of {attrs.get('long_name', 'the variable')}"
    return kept
