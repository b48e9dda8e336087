"""Time series out of gridded data: the area-weighted mean of a region and the series at one point."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from nephelae.errors import InvalidInput
from nephelae.toolbox.measures import measured_variables, with_cell_method, with_time_named_time
from nephelae.toolbox.subset import latitude_name, longitude_name

AREA_MEAN_METHOD = "area: mean (weighted by cos latitude)"


def area_mean(ds: xr.Dataset, variables: Sequence[str] | None = None) -> xr.Dataset:
    """The cos(latitude)-weighted mean over the spatial dimensions of each variable with a time dimension.

    Missing cells (NaN: land, ice, no retrieval) count neither in the sum nor in the weights, so the result is the
    mean over the valid cells. Works on regular grids (1-D latitude) and curvilinear grids or swaths (2-D latitude).
    The result keeps the time dimension (and any other non-spatial one, e.g. depth); flag variables are left out
    unless named in `variables`. Lazy: dask arrays stay dask arrays.
    """
    ds, time_name = with_time_named_time(ds, "area mean")
    spatial = _spatial_dims(ds)
    names = measured_variables(ds, variables, ["time", *spatial], "area mean")
    weights = _cos_latitude(ds)
    means = {name: _weighted_mean(ds[name], weights, spatial) for name in names}
    return xr.Dataset(means, attrs=ds.attrs).rename({"time": time_name})  # the reduction dropped the positions


def _spatial_dims(ds: xr.Dataset) -> list[Hashable]:
    lat, lon = ds[latitude_name(ds)], ds[longitude_name(ds)]
    dims = [dim for dim in (*lat.dims, *lon.dims) if dim != "time"]
    return list(dict.fromkeys(dims))


def _cos_latitude(ds: xr.Dataset) -> xr.DataArray:
    lat = ds[latitude_name(ds)].astype("float64")
    # A swath's unknown positions (NaN) weigh nothing; xarray refuses NaN weights.
    cosine = xr.apply_ufunc(np.cos, np.deg2rad(lat), dask="allowed")  # numpy or dask, as given
    weights: xr.DataArray = cosine.clip(min=0.0).fillna(0.0)
    return weights.reset_coords(drop=True)


def _weighted_mean(da: xr.DataArray, weights: xr.DataArray, dims: list[Hashable]) -> xr.DataArray:
    # float64: a float32 sum over a million cells loses the last digits of a temperature in kelvin.
    mean = da.astype("float64").weighted(weights).mean(dim=dims)
    mean.attrs = with_cell_method(da.attrs, AREA_MEAN_METHOD)
    return mean


def point_series(ds: xr.Dataset, lon: float, lat: float) -> xr.Dataset:
    """The time series of each variable at the grid point nearest to (`lon`, `lat`), in degrees east and north.

    The chosen point's own coordinates stay as scalar coordinates, so a caller can say how far it was from the
    request. Regular grids and curvilinear grids alike; the longitude may be given in -180..180 or 0..360.
    """
    ds, time_name = with_time_named_time(ds, "point series")
    if not (-90.0 <= lat <= 90.0 and np.isfinite(lon)):
        raise InvalidInput(f"point ({lon}, {lat}) is not a longitude and a latitude in degrees")
    lat_name, lon_name = latitude_name(ds), longitude_name(ds)
    lats, lons = ds[lat_name], ds[lon_name]
    if lats.ndim == 1 and lons.ndim == 1:
        index = {lats.dims[0]: _nearest_1d(lats.values, lat), lons.dims[0]: _nearest_lon(lons.values, lon)}
    else:
        index = _nearest_2d(lats, lons, lon, lat)
    names = [name for name, da in ds.data_vars.items() if "time" in da.dims]
    return ds[names].isel(index).rename({"time": time_name})


def _nearest_1d(values: np.ndarray, target: float) -> int:
    return int(np.nanargmin(np.abs(values - target)))


def _nearest_lon(values: np.ndarray, target: float) -> int:
    return int(np.nanargmin(np.abs(_wrapped(values - target))))


def _wrapped(difference: np.ndarray) -> np.ndarray:
    return (difference + 180.0) % 360.0 - 180.0


def _nearest_2d(lats: xr.DataArray, lons: xr.DataArray, lon: float, lat: float) -> dict[Hashable, int]:
    lat2d, lon2d = xr.broadcast(lats, lons)
    dx = _wrapped(lon2d.values - lon) * np.cos(np.deg2rad(lat))
    distance = np.hypot(dx, lat2d.values - lat)
    if np.isnan(distance).all():
        raise InvalidInput("the dataset has no valid position to pick a point from")
    flat = int(np.nanargmin(distance))
    position = np.unravel_index(flat, distance.shape)
    return {dim: int(i) for dim, i in zip(lat2d.dims, position, strict=True)}
