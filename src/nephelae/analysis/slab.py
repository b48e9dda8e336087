"""The box of a regular grid as index ranges, computed once from one granule, and the per-file area mean over it.

A regular (1-D lat/lon) archive shares one grid across its granules, so the rows and columns of the box are found
once; each granule is then read as that slab only, with netCDF4 directly (no xarray, no stacking), and reduced to
cos-latitude weighted sums per time step. Decoding follows xarray's CF rules (`_FillValue` and `missing_value` are
masked, then `scale_factor` and `add_offset` applied; valid ranges are not applied), so the numbers are those of
`toolbox.area_mean` over the stacked files. This module imports only numpy and netCDF4: it runs in worker processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import netCDF4
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
LATITUDE_NAMES = ("lat", "latitude", "nav_lat")
LONGITUDE_NAMES = ("lon", "longitude", "nav_lon")


@dataclass(frozen=True)
class Slab:
    """Rows (one contiguous range) and column runs of the box on a regular grid, with their coordinates."""

    lat_name: str
    lon_name: str
    dims: tuple[str, str, str]  # (time, y, x): the only layout read this way
    rows: slice
    column_runs: tuple[slice, ...]  # contiguous runs, in the order the output lists longitudes
    latitudes: FloatArray
    longitudes: FloatArray  # in [-180, 180], in output order

    @property
    def cells(self) -> int:
        return len(self.latitudes) * len(self.longitudes)


@dataclass(frozen=True)
class FileSums:
    """One granule reduced: its times (ns since 1970) and, per variable, weighted sums and weights per time step."""

    times: npt.NDArray[np.int64]
    sums: dict[str, FloatArray]
    weights: dict[str, FloatArray]


def find_coordinate(dataset: netCDF4.Dataset, standard_name: str, units: str, names: tuple[str, ...]) -> str | None:
    """The coordinate variable by standard_name or units, then by usual names (as `toolbox.subset` does)."""
    for name, variable in dataset.variables.items():
        if getattr(variable, "standard_name", None) == standard_name or getattr(variable, "units", None) == units:
            return str(name)
    return next((name for name in names if name in dataset.variables), None)


def plan_slab(path: str, box: tuple[float, float, float, float] | None) -> Slab | None:
    """The slab of `box` (W, S, E, N; W > E crosses the antimeridian) on the file's grid; None if not a 1-D grid."""
    with netCDF4.Dataset(path, "r") as dataset:
        lat_name = find_coordinate(dataset, "latitude", "degrees_north", LATITUDE_NAMES)
        lon_name = find_coordinate(dataset, "longitude", "degrees_east", LONGITUDE_NAMES)
        if lat_name is None or lon_name is None:
            return None
        lat_var, lon_var = dataset.variables[lat_name], dataset.variables[lon_name]
        if lat_var.ndim != 1 or lon_var.ndim != 1:
            return None
        dims = ("time", str(lat_var.dimensions[0]), str(lon_var.dimensions[0]))
        lat = np.asarray(lat_var[:], dtype=float)
        lon = ((np.asarray(lon_var[:], dtype=float) + 180.0) % 360.0) - 180.0
    west, south, east, north = box if box is not None else (-180.0, -90.0, 180.0, 90.0)
    rows = np.flatnonzero((lat >= south) & (lat <= north))
    columns = _columns(lon, west, east)
    row_range = slice(int(rows.min()), int(rows.max()) + 1) if rows.size else slice(0, 0)
    runs = _runs(columns)
    return Slab(lat_name, lon_name, dims, row_range, runs, lat[row_range], lon[columns] if columns.size else lon[:0])


def _columns(lon: FloatArray, west: float, east: float) -> npt.NDArray[np.intp]:
    """Column indices of the box in output order: by longitude, the western part first across the antimeridian."""
    if west <= east:
        columns = np.flatnonzero((lon >= west) & (lon <= east))
        return columns[np.argsort(lon[columns], kind="stable")]
    western, eastern = np.flatnonzero(lon >= west), np.flatnonzero(lon <= east)
    return np.concatenate([western[np.argsort(lon[western])], eastern[np.argsort(lon[eastern])]])


def _runs(columns: npt.NDArray[np.intp]) -> tuple[slice, ...]:
    """Consecutive increasing indices grouped into slices (reading a slice is one HDF5 hyperslab)."""
    if not columns.size:
        return ()
    breaks = np.flatnonzero(np.diff(columns) != 1) + 1
    return tuple(slice(int(run[0]), int(run[-1]) + 1) for run in np.split(columns, breaks))


def worker_ready() -> int:
    """Called once in each new worker process: it has started (and imported this module)."""
    return os.getpid()


def reduce_files(paths: list[str], slab: Slab, variables: tuple[str, ...]) -> list[FileSums]:
    """The weighted sums of several granules (one task of the worker pool)."""
    row_weights = np.cos(np.deg2rad(slab.latitudes))
    return [_reduce_file(path, slab, variables, row_weights) for path in paths]


def _reduce_file(path: str, slab: Slab, variables: tuple[str, ...], row_weights: FloatArray) -> FileSums:
    """Per time step, sum(w * x) and sum(w) over the valid cells; the weight depends on the row only, so each row is
    summed first and weighted once (the same sums as weighting every cell)."""
    with netCDF4.Dataset(path, "r") as dataset:
        times = _times(dataset)
        sums: dict[str, FloatArray] = {}
        counted: dict[str, FloatArray] = {}
        for name in variables:
            row_sums, row_counts = _row_sums(dataset.variables[name], slab)  # (time, rows) each
            sums[name] = row_sums @ row_weights
            counted[name] = row_counts @ row_weights
    return FileSums(times, sums, counted)


def _row_sums(variable: netCDF4.Variable[Any], slab: Slab) -> tuple[FloatArray, FloatArray]:
    """Sums and counts of the valid cells of each row of the slab, decoded as xarray decodes (CF packing)."""
    variable.set_auto_maskandscale(False)
    raw = _read_raw(variable, slab)
    if np.issubdtype(raw.dtype, np.integer):
        # Packed integers: unpacking is linear, so sum the stored integers and unpack the sums (no float copy).
        invalid = _missing(variable, raw)
        totals = np.where(invalid, 0, raw).sum(axis=2, dtype=np.int64).astype(np.float64)
        counts = (~invalid).sum(axis=2).astype(np.float64)
        scale, offset = _packing(variable)
        return totals * scale + counts * offset, counts
    values = read_slab(variable, slab, raw)
    valid = ~np.isnan(values)
    return np.where(valid, values, 0.0).sum(axis=2), valid.sum(axis=2).astype(np.float64)


def _read_raw(variable: netCDF4.Variable[Any], slab: Slab) -> npt.NDArray[Any]:
    parts = [np.asarray(variable[:, slab.rows, run]) for run in slab.column_runs]
    return np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


def _missing(variable: netCDF4.Variable[Any], raw: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Cells equal to `_FillValue` or `missing_value` (xarray's mask; valid ranges are not applied)."""
    missing = np.zeros(raw.shape, dtype=bool)
    for attribute in ("_FillValue", "missing_value"):
        for marker in np.atleast_1d(getattr(variable, attribute, [])):
            missing |= np.isnan(raw) if np.isnan(float(marker)) else raw == marker
    return missing


def _packing(variable: netCDF4.Variable[Any]) -> tuple[float, float]:
    return float(getattr(variable, "scale_factor", 1.0)), float(getattr(variable, "add_offset", 0.0))


def read_slab(variable: netCDF4.Variable[Any], slab: Slab, raw: npt.NDArray[Any] | None = None) -> FloatArray:
    """The slab of a (time, lat, lon) variable as floats, NaN where missing, unpacked like xarray decodes it."""
    variable.set_auto_maskandscale(False)
    raw = _read_raw(variable, slab) if raw is None else raw
    values = np.asarray(raw, dtype=np.float64)
    values[_missing(variable, raw)] = np.nan
    scale, offset = _packing(variable)
    return values * scale + offset


def _times(dataset: netCDF4.Dataset) -> npt.NDArray[np.int64]:
    time = dataset.variables["time"]
    moments = netCDF4.num2date(
        np.atleast_1d(time[:]),
        time.units,
        getattr(time, "calendar", "standard"),
        only_use_cftime_datetimes=False,
        only_use_python_datetimes=True,
    )
    return np.array(
        [np.datetime64(moment, "ns") for moment in np.atleast_1d(np.asarray(moments, dtype=object))]
    ).astype(np.int64)
