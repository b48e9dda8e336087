"""The box of a regular grid as index ranges, computed once from one granule, and the per-file area mean over it.

A regular (1-D lat/lon) archive shares one grid across its granules, so the rows and columns of the box are found
once; each granule is then read as that slab only, with netCDF4 directly (no xarray, no stacking), and reduced to
cos-latitude weighted sums per time step. Decoding follows xarray's CF rules (`_FillValue` and `missing_value` are
masked, then `scale_factor` and `add_offset` applied), and values outside the valid range (CF 2.5.1) are missing
too: RSS files mark land, ice and rain with codes above `valid_range` and no fill value, and their mean wind over a
coast would otherwise be 44 m/s. The service masks the same ranges with `valid_interval` on the xarray path, so the
numbers are the same. This module imports only numpy and netCDF4: it runs in worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import netCDF4
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
LATITUDE_NAMES = ("lat", "latitude", "nav_lat")
LONGITUDE_NAMES = ("lon", "longitude", "nav_lon")
REAL_CALENDARS = ("standard", "gregorian", "proleptic_gregorian")


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
    steps: int = 1  # time steps per granule (a granule may hold a season of daily fields)
    box: tuple[float, float, float, float] | None = None  # the box asked for (W, S, E, N)
    grid: tuple[int, int] = (0, 0)  # the sizes of the latitude and longitude axes the slab was planned on

    @property
    def cells(self) -> int:
        return len(self.latitudes) * len(self.longitudes)

    @property
    def values(self) -> int:
        """The values of one variable read from one granule: every time step of the box."""
        return self.cells * self.steps


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
        return _plan(dataset, box)


def _plan(dataset: netCDF4.Dataset, box: tuple[float, float, float, float] | None) -> Slab | None:
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
    steps = len(dataset.dimensions["time"]) if "time" in dataset.dimensions else 1
    west, south, east, north = box if box is not None else (-180.0, -90.0, 180.0, 90.0)
    rows = np.flatnonzero((lat >= south) & (lat <= north))
    columns = _columns(lon, west, east)
    row_range = slice(int(rows.min()), int(rows.max()) + 1) if rows.size else slice(0, 0)
    runs = _runs(columns)
    longitudes = lon[columns] if columns.size else lon[:0]
    grid = (lat.size, lon.size)
    return Slab(lat_name, lon_name, dims, row_range, runs, lat[row_range], longitudes, steps, box, grid)


def _on_grid(dataset: netCDF4.Dataset, slab: Slab) -> Slab:
    """`slab` if the granule has its grid; else the box planned again on the granule's own grid (an archive's grid
    may change, e.g. with a new product version: the first granule's index ranges would point elsewhere)."""
    variables = dataset.variables
    if slab.lat_name in variables and slab.lon_name in variables:
        lat_var, lon_var = variables[slab.lat_name], variables[slab.lon_name]
        if lat_var.ndim == 1 and lon_var.ndim == 1 and (lat_var.size, lon_var.size) == slab.grid:
            lat = np.asarray(lat_var[slab.rows], dtype=float)
            lon = np.concatenate([np.empty(0), *(np.asarray(lon_var[run], dtype=float) for run in slab.column_runs)])
            lon = ((lon + 180.0) % 360.0) - 180.0
            if np.allclose(lat, slab.latitudes, atol=1e-6) and np.allclose(lon, slab.longitudes, atol=1e-6):
                return slab
    own = _plan(dataset, slab.box)
    if own is None:
        raise ValueError(f"{dataset.filepath()} has no 1-D latitude and longitude like the dataset's first granule")
    return own


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
    return [_reduce_file(path, slab, variables) for path in paths]


def _reduce_file(path: str, planned: Slab, variables: tuple[str, ...]) -> FileSums:
    """Per time step, sum(w * x) and sum(w) over the valid cells; the weight depends on the row only, so each row is
    summed first and weighted once (the same sums as weighting every cell)."""
    with netCDF4.Dataset(path, "r") as dataset:
        slab = _on_grid(dataset, planned)
        row_weights = np.cos(np.deg2rad(slab.latitudes))
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
    raw = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    stored = as_unsigned(_attributes(variable), raw.dtype)[1]
    return raw.view(stored) if stored != raw.dtype else raw


def _attributes(variable: netCDF4.Variable[Any]) -> dict[str, Any]:
    return {key: variable.getncattr(key) for key in variable.ncattrs()}


def as_unsigned(attributes: Mapping[Any, Any], stored: npt.DTypeLike) -> tuple[dict[Any, Any], np.dtype[Any]]:
    """The attributes and stored type of a variable as its reader sees them: NetCDF-3 has no unsigned integers, so
    `_Unsigned = "true"` says the signed integers stored (and their fill values and ranges) are unsigned ones."""
    signed = np.dtype(stored)
    if str(attributes.get("_Unsigned", "false")).lower() != "true" or signed.kind != "i":
        return dict(attributes), signed
    unsigned = np.dtype(f"u{signed.itemsize}")
    seen = dict(attributes)
    for key in ("_FillValue", "missing_value", "valid_range", "valid_min", "valid_max"):
        if key in seen and np.asarray(seen[key]).dtype == signed:
            seen[key] = np.asarray(seen[key]).view(unsigned)
    return seen, unsigned


def _missing(variable: netCDF4.Variable[Any], raw: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Cells equal to `_FillValue` or `missing_value` (xarray's mask), or outside the valid range."""
    attributes = as_unsigned(_attributes(variable), variable.dtype)[0]
    missing = np.zeros(raw.shape, dtype=bool)
    for attribute in ("_FillValue", "missing_value"):
        for marker in np.atleast_1d(attributes.get(attribute, [])):
            missing |= np.isnan(raw) if np.isnan(float(marker)) else raw == marker
    scale, offset = _packing(variable)
    interval = valid_interval(attributes, raw.dtype, scale, offset)
    if interval is not None:
        # The interval back in stored units (it has half a packing step of margin, so rounding cannot matter).
        low, high = sorted(((interval[0] - offset) / scale, (interval[1] - offset) / scale))
        missing |= (raw < low) | (raw > high)
    return missing


def _packing(variable: netCDF4.Variable[Any]) -> tuple[float, float]:
    return float(getattr(variable, "scale_factor", 1.0)), float(getattr(variable, "add_offset", 0.0))


def valid_interval(
    attributes: Mapping[Any, Any], stored: npt.DTypeLike, scale: float = 1.0, offset: float = 0.0
) -> tuple[float, float] | None:
    """The valid interval of the unpacked values, from `valid_range` or `valid_min`/`valid_max`; None if unbounded.

    CF 2.5.1 gives the range in the stored (packed) type; some producers (RSS) give it in the unpacked units, which
    its type then tells (a float range on packed integers). Half a packing step of margin keeps the values on the
    bounds, whichever precision they are unpacked in.
    """
    given = {
        key: np.asarray(attributes[key]).ravel()
        for key in ("valid_range", "valid_min", "valid_max")
        if key in attributes and np.asarray(attributes[key]).dtype.kind in "iuf" and np.asarray(attributes[key]).size
    }
    if not given:
        return None
    low, high = -np.inf, np.inf
    if "valid_range" in given and given["valid_range"].size == 2:
        low, high = float(given["valid_range"][0]), float(given["valid_range"][1])
    if "valid_min" in given:
        low = float(given["valid_min"][0])
    if "valid_max" in given:
        high = float(given["valid_max"][0])
    stored_type = np.dtype(stored)
    packed_units = all(
        np.issubdtype(bound.dtype, np.integer) == np.issubdtype(stored_type, np.integer) for bound in given.values()
    )
    if packed_units:
        low, high = sorted((low * scale + offset, high * scale + offset))
    if np.issubdtype(stored_type, np.integer):
        margin = abs(scale) / 2
    else:  # a range written from the data in another float precision still holds its extremes
        finite = [abs(bound) for bound in (low, high) if np.isfinite(bound)]
        margin = 4 * float(np.finfo(stored_type).eps) * max(finite, default=0.0)
    return low - margin, high + margin


def read_slab(variable: netCDF4.Variable[Any], slab: Slab, raw: npt.NDArray[Any] | None = None) -> FloatArray:
    """The slab of a (time, lat, lon) variable as floats, NaN where missing, unpacked like xarray decodes it."""
    variable.set_auto_maskandscale(False)
    raw = _read_raw(variable, slab) if raw is None else raw
    values = np.asarray(raw, dtype=np.float64)
    values[_missing(variable, raw)] = np.nan
    scale, offset = _packing(variable)
    return values * scale + offset


def _times(dataset: netCDF4.Dataset) -> npt.NDArray[np.int64]:
    """The time steps in ns since 1970. A model calendar's dates (noleap, 360_day...) keep their labels: a noleap
    date is a date of the standard calendar too, so its series reads as the data's own dates do."""
    if "time" not in dataset.variables:  # dated only by its attributes or name: the caller puts the catalog's date
        steps = len(dataset.dimensions["time"]) if "time" in dataset.dimensions else 1
        return np.full(steps, np.datetime64("NaT", "ns")).astype(np.int64)
    time = dataset.variables["time"]
    calendar = str(getattr(time, "calendar", "standard")).lower()
    values = np.atleast_1d(time[:])
    if calendar in REAL_CALENDARS:
        moments = netCDF4.num2date(
            values, time.units, calendar, only_use_cftime_datetimes=False, only_use_python_datetimes=True
        )
        stamps = [np.datetime64(moment, "ns") for moment in np.atleast_1d(np.asarray(moments, dtype=object))]
    else:
        moments = netCDF4.num2date(values, time.units, calendar, only_use_cftime_datetimes=True)
        stamps = [_labelled(moment, calendar) for moment in np.atleast_1d(np.asarray(moments, dtype=object))]
    return np.array(stamps, dtype="datetime64[ns]").astype(np.int64)


def _labelled(moment: Any, calendar: str) -> np.datetime64:
    try:
        return np.datetime64(moment.isoformat(), "ns")
    except ValueError:
        raise ValueError(
            f"the {calendar} calendar date {moment.isoformat()} has no standard calendar date to label a time "
            "series with; ask for a subset or a climatology instead"
        ) from None
