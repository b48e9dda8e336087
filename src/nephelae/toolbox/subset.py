"""Subsetting by area, time and variables: lazy (dask stays dask), antimeridian-aware, grids and swaths alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import xarray as xr

from nephelae.errors import InvalidInput

BBox = tuple[float, float, float, float]  # west, south, east, north; west > east crosses the antimeridian

_LATITUDE = ("latitude", "degrees_north", ("lat", "latitude", "nav_lat"))
_LONGITUDE = ("longitude", "degrees_east", ("lon", "longitude", "nav_lon"))


def _find(ds: xr.Dataset, standard_name: str, units: str, names: tuple[str, ...]) -> str:
    for name, variable in ds.variables.items():
        if variable.attrs.get("standard_name") == standard_name or variable.attrs.get("units") == units:
            return str(name)
    for name in names:
        if name in ds.variables:
            return name
    raise InvalidInput(f"no {standard_name} coordinate found (looked for standard_name, units, {', '.join(names)})")


def latitude_name(ds: xr.Dataset) -> str:
    return _find(ds, *_LATITUDE)


def longitude_name(ds: xr.Dataset) -> str:
    return _find(ds, *_LONGITUDE)


def subset(
    ds: xr.Dataset,
    *,
    bbox: BBox | None = None,
    time: tuple[dt.datetime | None, dt.datetime | None] | None = None,
    variables: Sequence[str] | None = None,
) -> xr.Dataset:
    """The part of `ds` inside `bbox` and `time` (closed bounds, None for open), keeping only `variables`."""
    if variables:
        missing = sorted(set(variables) - set(ds.data_vars))
        if missing:
            raise InvalidInput(f"no variable {', '.join(missing)}; the dataset has {', '.join(map(str, ds.data_vars))}")
        ds = ds[list(variables)]
    if time is not None and "time" in ds.dims and "time" in ds.coords:  # a time axis without dates is kept whole
        ds = _subset_time(ds, *time)
    if bbox is not None:
        ds = _subset_area(ds, bbox)
    return ds


def _subset_time(ds: xr.Dataset, start: dt.datetime | None, end: dt.datetime | None) -> xr.Dataset:
    times = ds["time"].values
    if times.dtype == object:  # cftime dates of a model calendar (noleap, 360_day): compared by their fields
        return ds.isel(time=np.flatnonzero([_within(_fields(moment), start, end) for moment in times]))
    keep = np.ones(times.shape, dtype=bool)
    if start is not None:
        keep &= times >= _naive_utc(start)
    if end is not None:
        keep &= times <= _naive_utc(end)
    return ds.isel(time=np.flatnonzero(keep))


def _fields(moment: dt.datetime) -> tuple[int, ...]:
    """Year to microsecond: the dates of any calendar order as these do."""
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond)


def _within(fields: tuple[int, ...], start: dt.datetime | None, end: dt.datetime | None) -> bool:
    if start is not None and fields < _fields(_utc(start)):
        return False
    return end is None or fields <= _fields(_utc(end))


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _naive_utc(moment: dt.datetime) -> np.datetime64:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return np.datetime64(moment, "ns")


def _to_180(longitudes: np.ndarray) -> np.ndarray:
    return ((np.asarray(longitudes, dtype=float) + 180.0) % 360.0) - 180.0


def _subset_area(ds: xr.Dataset, bbox: BBox) -> xr.Dataset:
    bbox = _box_in_180(bbox)
    lat_name, lon_name = latitude_name(ds), longitude_name(ds)
    if ds[lat_name].ndim == 1 and ds[lon_name].ndim == 1:
        return _subset_grid(ds, bbox, lat_name, lon_name)
    return _subset_swath(ds, bbox, lat_name, lon_name)


def _box_in_180(bbox: BBox) -> BBox:
    """The box with longitudes in [-180, 180], as the data's are compared: a box given in 0..360 (160, 260: the
    Pacific) would otherwise stop at 180."""
    west, south, east, north = bbox
    if east - west >= 360:
        return (-180.0, south, 180.0, north)
    if -180 <= west <= 180 and -180 <= east <= 180:
        return bbox
    wrapped_west, wrapped_east = ((west + 180.0) % 360.0) - 180.0, ((east + 180.0) % 360.0) - 180.0
    return (wrapped_west, south, wrapped_east if east != 180 else 180.0, north)


def _subset_grid(ds: xr.Dataset, bbox: BBox, lat_name: str, lon_name: str) -> xr.Dataset:
    west, south, east, north = bbox
    lat = ds[lat_name].values
    rows = np.flatnonzero((lat >= south) & (lat <= north))
    lon = _to_180(ds[lon_name].values)
    if west <= east:
        columns = np.flatnonzero((lon >= west) & (lon <= east))
        columns = columns[np.argsort(lon[columns], kind="stable")]
    else:  # across the antimeridian: the western part first, then the eastern one
        western, eastern = np.flatnonzero(lon >= west), np.flatnonzero(lon <= east)
        columns = np.concatenate([western[np.argsort(lon[western])], eastern[np.argsort(lon[eastern])]])
    return ds.isel({ds[lat_name].dims[0]: rows, ds[lon_name].dims[0]: columns})


def _subset_swath(ds: xr.Dataset, bbox: BBox, lat_name: str, lon_name: str) -> xr.Dataset:
    """Mask pixels outside the box, and crop the swath to the rows and columns that keep some."""
    west, south, east, north = bbox
    lat, lon = ds[lat_name], xr.apply_ufunc(_to_180, ds[lon_name], dask="allowed")
    inside_lon = (lon >= west) & (lon <= east) if west <= east else (lon >= west) | (lon <= east)
    inside = ((lat >= south) & (lat <= north) & inside_lon).compute()
    dims = ds[lat_name].dims
    crop = {}
    for axis, dim in enumerate(dims):
        other = tuple(i for i in range(len(dims)) if i != axis)
        crop[dim] = np.flatnonzero(inside.values.any(axis=other))
    cropped = ds.isel(crop)
    return cropped.where(inside.isel(crop))
