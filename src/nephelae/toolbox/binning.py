"""L2P swaths binned onto a regular latitude/longitude grid (L3): per-cell mean, count and standard deviation.

Pixels are assigned to the cell holding their centre, longitudes taken modulo 360, so swaths crossing the
antimeridian or passing over a pole need no special case. The reduction is flox's `groupby_reduce` on the cell index
of every pixel: lazy when the values are dask arrays (the swath's geolocation is read eagerly, it is small), eager
otherwise, and the same code for one swath, several along `time`, or a list of swaths of different shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dask.array as da
import numpy as np
import numpy.typing as npt
import xarray as xr
from flox import groupby_reduce

from nephelae.errors import InvalidInput
from nephelae.toolbox.subset import BBox, latitude_name, longitude_name

__all__ = ["L3Grid", "bin_l2p", "l3_grid"]

QUALITY = "quality_level"
SSES_BIAS = "sses_bias"
TIME_ENCODING = {"units": "seconds since 1981-01-01 00:00:00", "calendar": "standard", "dtype": "float64"}
KEPT_ATTRIBUTES = ("long_name", "standard_name", "units", "comment", "source")


@dataclass(frozen=True)
class L3Grid:
    """A regular grid of `resolution` degrees: the block of global cells starting at (`row0`, `col0`)."""

    resolution: float
    row0: int
    rows: int
    col0: int
    columns: int

    @property
    def global_rows(self) -> int:
        return round(180 / self.resolution)

    @property
    def global_columns(self) -> int:
        return round(360 / self.resolution)

    def latitudes(self) -> npt.NDArray[np.float64]:
        return np.asarray(-90 + (self.row0 + np.arange(self.rows) + 0.5) * self.resolution, dtype=np.float64)

    def longitudes(self) -> npt.NDArray[np.float64]:
        """Cell centres, increasing: past 180 when the grid crosses the antimeridian (CF allows it)."""
        return np.asarray(-180 + (self.col0 + np.arange(self.columns) + 0.5) * self.resolution, dtype=np.float64)

    def cell_index(self, lat: npt.NDArray[Any], lon: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """The flat index (row * columns + column) of each pixel's cell in this grid; -1 outside or not located."""
        located = np.isfinite(lat) & np.isfinite(lon)
        lat = np.where(located, lat, 0.0)
        lon = np.where(located, lon, 0.0)
        row = np.clip(np.floor((lat + 90) / self.resolution).astype(np.int64), 0, self.global_rows - 1) - self.row0
        column = np.clip(
            np.floor(np.mod(lon + 180, 360) / self.resolution).astype(np.int64), 0, self.global_columns - 1
        )
        column = np.mod(column - self.col0, self.global_columns)  # past the antimeridian, back to the grid's start
        inside = located & (row >= 0) & (row < self.rows) & (column < self.columns)
        return np.where(inside, row * self.columns + column, -1)


def l3_grid(resolution: float, bbox: BBox | None = None) -> L3Grid:
    """The grid of `resolution` degrees (a divisor of 180) over the cells that overlap `bbox` (default: global)."""
    if not isinstance(resolution, int | float) or isinstance(resolution, bool) or not 0 < resolution <= 10:
        raise InvalidInput(f"resolution must be a number of degrees in (0, 10], not {resolution!r}")
    if abs(180 / resolution - round(180 / resolution)) > 1e-6:
        raise InvalidInput(f"resolution {resolution} does not divide 180 degrees; use e.g. 0.05, 0.1, 0.25, 0.5 or 1")
    rows, columns = round(180 / resolution), round(360 / resolution)
    if bbox is None:
        return L3Grid(resolution, 0, rows, 0, columns)
    west, south, east, north = bbox
    if not -90 <= south < north <= 90:
        raise InvalidInput(f"bbox {list(bbox)} needs -90 <= south < north <= 90")
    row0 = min(math.floor((south + 90) / resolution), rows - 1)
    row1 = max(math.ceil((north + 90) / resolution), row0 + 1)
    if east == west:
        raise InvalidInput(f"bbox {list(bbox)} has no width: west equals east (use -180, 180 for the whole globe)")
    width = 360.0 if east - west >= 360 else (east - west) % 360 or 360.0
    start = np.mod(west + 180, 360)
    col0 = math.floor(start / resolution)
    col1 = math.ceil((start + width) / resolution - 1e-9)
    return L3Grid(resolution, row0, min(row1, rows) - row0, col0, min(col1 - col0, columns))


def bin_l2p(
    ds: xr.Dataset | Sequence[xr.Dataset],
    *,
    resolution: float,
    bbox: BBox | None = None,
    min_quality: int | None = 4,
    variable: str = "sea_surface_temperature",
    sses_bias: bool = False,
) -> xr.Dataset:
    """Bin L2P swath pixels (2-D latitude/longitude, GHRSST GDS 2.0) onto a regular L3 grid.

    Keeps the pixels whose `quality_level` is at least `min_quality` (None keeps every pixel, for products without
    quality levels), optionally corrects them by subtracting `sses_bias` (GDS 2.0: the bias is to be subtracted),
    and gives, per cell of `resolution` degrees over `bbox` (W, S, E, N; W > E crosses the antimeridian): the mean
    `<variable>`, the pixel count `<variable>_count` and the (population) standard deviation `<variable>_stddev`.
    Several swaths (along `time`, or a list of datasets) are binned together; the result has one time step, at the
    middle of their times, with `time_bnds` spanning them.
    """
    datasets = [ds] if isinstance(ds, xr.Dataset) else list(ds)
    if not datasets:
        raise InvalidInput("bin_l2p: no swath to bin")
    grid = l3_grid(resolution, bbox)
    pieces = [_pixels(swath, grid, variable, min_quality, sses_bias) for swath in datasets]
    values = _concatenate([piece[0] for piece in pieces])
    cells = np.concatenate([piece[1] for piece in pieces])
    expected = np.arange(grid.rows * grid.columns)
    # map-reduce: flox's default for dask ("cohorts") first relates chunks to groups, quadratic in a global grid's cells
    method: Literal["map-reduce"] | None = "map-reduce" if isinstance(values, da.Array) else None
    results = {}
    for func, fill in (("nanmean", np.nan), ("count", 0), ("nanstd", np.nan)):
        reduced = groupby_reduce(values, cells, func=func, expected_groups=expected, fill_value=fill, method=method)[0]
        results[func] = reduced.reshape(grid.rows, grid.columns)
    return _l3_dataset(grid, datasets, variable, results, sses_bias=sses_bias, min_quality=min_quality)


def _pixels(
    swath: xr.Dataset, grid: L3Grid, variable: str, min_quality: int | None, sses_bias: bool
) -> tuple[Any, npt.NDArray[np.int64]]:
    """The swath's kept values, flat (NaN for dropped pixels), and the grid cell of each (numpy, computed now)."""
    if variable not in swath.data_vars:
        raise InvalidInput(f"bin_l2p: no variable {variable!r}; the swath has {', '.join(map(str, swath.data_vars))}")
    values = swath[variable].astype(np.float64)  # sums of many float32 pixels lose digits
    if min_quality is not None:
        if QUALITY not in swath.variables:
            raise InvalidInput(
                f"bin_l2p: the swath has no {QUALITY}; bin every pixel with min_quality None, or pick a GDS 2.0 L2P"
            )
        values = values.where(swath[QUALITY] >= min_quality)
    if sses_bias:
        if SSES_BIAS not in swath.variables:
            raise InvalidInput(f"bin_l2p: the swath has no {SSES_BIAS} to subtract; set sses_bias to false")
        values = values - swath[SSES_BIAS]
    lat = swath[latitude_name(swath)].reset_coords(drop=True)
    lon = swath[longitude_name(swath)].reset_coords(drop=True)
    values, lat, lon = (field.transpose(*values.dims) for field in xr.broadcast(values, lat, lon))
    cells = grid.cell_index(np.asarray(lat.values).ravel(), np.asarray(lon.values).ravel())
    data = values.data
    if isinstance(data, da.Array):
        return data.reshape(-1), cells  # type: ignore[no-untyped-call]
    return np.asarray(data).ravel(), cells


def _concatenate(arrays: list[Any]) -> Any:
    if len(arrays) == 1:
        return arrays[0]
    if any(isinstance(array, da.Array) for array in arrays):
        return da.concatenate(arrays)  # type: ignore[no-untyped-call]
    return np.concatenate(arrays)


def _l3_dataset(
    grid: L3Grid,
    swaths: list[xr.Dataset],
    variable: str,
    results: dict[str, Any],
    *,
    sses_bias: bool,
    min_quality: int | None,
) -> xr.Dataset:
    source = swaths[0][variable].attrs
    attrs = {key: source[key] for key in KEPT_ATTRIBUTES if key in source}
    dims = ("lat", "lon")
    selection = "all pixels" if min_quality is None else f"pixels of quality_level >= {min_quality}"
    correction = ", minus sses_bias" if sses_bias else ""
    mean_attrs = attrs | {
        "cell_methods": "area: mean",
        "comment": f"mean of the {selection}{correction} in the cell",
        "ancillary_variables": f"{variable}_count {variable}_stddev",
    }
    count_attrs = {
        "long_name": f"number of pixels averaged into {variable}",
        "units": "1",
        "cell_methods": "area: sum",
    }  # no `number_of_observations` standard-name modifier: deprecated; the mean names it as ancillary instead
    std_attrs = {
        "long_name": f"standard deviation of the pixels of {variable} in the cell",
        "units": attrs.get("units", "1"),
        "cell_methods": "area: standard_deviation",
    }
    ds = xr.Dataset(
        {
            variable: (dims, results["nanmean"], mean_attrs),
            f"{variable}_count": (dims, results["count"].astype(np.int32), count_attrs),
            f"{variable}_stddev": (dims, results["nanstd"], std_attrs),
        },
        coords=_grid_coords(grid),
    )
    ds["lat_bnds"] = (("lat", "nv"), _bounds(grid.latitudes(), grid.resolution))
    ds["lon_bnds"] = (("lon", "nv"), _bounds(grid.longitudes(), grid.resolution))
    return _with_time(ds, swaths, variable)


def _grid_coords(grid: L3Grid) -> dict[str, xr.Variable]:
    lat_attrs = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"}
    lon_attrs = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"}
    return {
        "lat": xr.Variable("lat", grid.latitudes(), lat_attrs | {"bounds": "lat_bnds"}),
        "lon": xr.Variable("lon", grid.longitudes(), lon_attrs | {"bounds": "lon_bnds"}),
    }


def _bounds(centres: npt.NDArray[np.float64], resolution: float) -> npt.NDArray[np.float64]:
    return np.stack([centres - resolution / 2, centres + resolution / 2], axis=-1)


def _with_time(ds: xr.Dataset, swaths: list[xr.Dataset], variable: str) -> xr.Dataset:
    """One time step at the middle of the swaths' times, bounded by them; no time when the swaths have none."""
    times = [swath["time"].values.ravel() for swath in swaths if "time" in swath.variables]
    stamps = np.concatenate(times) if times else np.array([], dtype="datetime64[ns]")
    stamps = stamps[~np.isnat(stamps)] if stamps.dtype.kind == "M" else stamps[:0]
    if not stamps.size:
        return ds
    first, last = stamps.min(), stamps.max()
    names = [variable, f"{variable}_count", f"{variable}_stddev"]
    result = ds.assign({name: ds[name].expand_dims(time=[first + (last - first) / 2]) for name in names})
    result["time"].attrs = {"standard_name": "time", "long_name": "time", "axis": "T", "bounds": "time_bnds"}
    result["time_bnds"] = (("time", "nv"), np.array([[first, last]], dtype=stamps.dtype))
    for name in ("time", "time_bnds"):  # CF-1.8 has no 64-bit integers: seconds as doubles
        result[name].encoding = dict(TIME_ENCODING)
    return result
