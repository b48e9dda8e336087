"""Where a granule is: its bounding box (STAC conventions) and, for swaths and tracks, a GeoJSON footprint.

Only the latitude/longitude variables are read, and a swath is processed as a strided sample of them that keeps
the edges (about `MAX_SAMPLES` points), its box padded by half the stride. Conventions of the result: longitudes in
[-180, 180] (0..360 files are converted), west > east when the box crosses the antimeridian, -180..180 when the
data reach a pole.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from nephelae.catalog.reader_footprint import polygon_footprint, swath_sides, track_footprint, wrap

FloatArray = npt.NDArray[np.float64]
Kind = Literal["grid", "swath", "track"]

POLAR_LATITUDE = 88.0  # beyond, the longitudes of neighbouring samples differ too much to bound: take them all
MAX_SAMPLES = 16_384  # per 2-D coordinate variable: larger ones are sampled with a stride (edges always kept)
MAX_WHOLE_READ = 4_194_304  # values: up to this, one read then sampling in memory; beyond, strided reads
FULL_CIRCLE = 360.0 - 1e-6
LATITUDE_UNITS = frozenset({"degrees_north", "degree_north", "degrees_n", "degree_n", "degreesn", "degreen"})
LONGITUDE_UNITS = frozenset({"degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee"})
PLAIN_DEGREES = frozenset({"", "degrees", "degree", "deg"})  # SMAP writes `Degrees`: trusted with a known name
AXES = {
    "lat": ("latitude", LATITUDE_UNITS, ("lat", "latitude", "nav_lat")),
    "lon": ("longitude", LONGITUDE_UNITS, ("lon", "longitude", "nav_lon")),
}


@dataclass(frozen=True)
class Coordinates:
    """The latitude and longitude variables of a granule and the group that holds them."""

    group: Any
    lat: Any
    lon: Any

    @property
    def kind(self) -> Kind:
        """`grid`: 1-D lat and lon on their own dimensions; `track`: 1-D along one dimension; `swath`: 2-D."""
        if self.lat.dimensions != self.lon.dimensions:
            return "grid"
        return "track" if self.lat.ndim <= 1 else "swath"


@dataclass(frozen=True)
class Extent:
    west: float
    south: float
    east: float
    north: float
    footprint: dict[str, Any] | None = None


def walk_groups(group: Any) -> Iterator[Any]:
    """A group, then its subgroups depth first (Sentinel-6 keeps everything under /data_01 and /data_01/ku)."""
    yield group
    for child in group.groups.values():
        yield from walk_groups(child)


def locate_coordinates(dataset: Any) -> Coordinates | None:
    """The lat/lon pair of the first group (root first) that has one; nothing is read."""
    for group in walk_groups(dataset):
        lats = _candidates(group, "lat")
        lons = _candidates(group, "lon")
        for lat in lats:
            for lon in lons:
                if lat.dimensions == lon.dimensions or (lat.ndim == lon.ndim == 1):
                    return Coordinates(group, lat, lon)
    return None


def _candidates(group: Any, axis: str) -> list[Any]:
    """Variables that are latitudes (or longitudes): by standard_name or CF units, else by a usual name with plain
    degree units; the surest and simplest first."""
    standard_name, units_set, names = AXES[axis]
    ranked = []
    for variable in group.variables.values():
        units = str(_attribute(variable, "units") or "").strip().lower()
        sure = _attribute(variable, "standard_name") == standard_name or units in units_set
        named = variable.name.lower() in names
        if (sure or (named and units in PLAIN_DEGREES)) and _is_numeric(variable):
            ranked.append(((not sure, not named, variable.ndim), variable))
    return [variable for _, variable in sorted(ranked, key=lambda item: item[0])]


def read_extent(coordinates: Coordinates) -> Extent | None:
    """Box (and footprint) of the granule; None when the coordinates hold no valid value."""
    if coordinates.kind == "grid":
        return _grid_extent(coordinates)
    if coordinates.kind == "track":
        return _track_extent(coordinates)
    return _swath_extent(coordinates)


def _grid_extent(coordinates: Coordinates) -> Extent | None:
    """Coordinate extents widened by half a cell (or taken from the bounds variables), so that a global 0.25 deg
    grid gives -180..180 / -90..90; a 0..360 regional grid past 180 (IMOS 57..185) gives west > east."""
    latitudes = _axis_span(coordinates.lat, periodic=False)
    longitudes = _axis_span(coordinates.lon, periodic=True)
    if latitudes is None or longitudes is None:
        return None
    (south, north), (west, east) = latitudes, longitudes
    if east - west >= FULL_CIRCLE:
        west, east = -180.0, 180.0
    return Extent(wrap_west(west), max(south, -90.0), wrap_east(east), min(north, 90.0))


def _axis_span(variable: Any, *, periodic: bool) -> tuple[float, float] | None:
    bounds = _bounds_variable(variable)
    values = _as_floats(variable[:] if bounds is None else bounds[:]).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    if periodic:
        values = np.unwrap(values, period=360.0)  # a grid stored 170..180, -180..-170 stays contiguous
    half = 0.0 if bounds is not None or values.size < 2 else float(np.median(np.abs(np.diff(values)))) / 2
    return float(values.min()) - half, float(values.max()) + half


def _bounds_variable(variable: Any) -> Any | None:
    name = _attribute(variable, "bounds")
    group_variables = variable.group().variables
    if isinstance(name, str) and name in group_variables and group_variables[name].shape[:1] == variable.shape:
        return group_variables[name]
    return None  # DUACS Mediterranean names lat_bnds but does not hold it


def _swath_extent(coordinates: Coordinates) -> Extent | None:
    """Box of a 2-D swath: the sampled extent, padded by half the sampling step so that pixels between samples
    stay inside; the pole is included when the swath's edge goes round it."""
    (lat, step), (lon, _) = sample_with_step(coordinates.lat), sample_with_step(coordinates.lon)
    lat, lon = _valid_positions(lat, lon)
    if lat.ndim != 2 or not np.isfinite(lat).any():
        return None
    sides = swath_sides(lat, lon)
    pole = enclosed_pole(np.concatenate(sides))
    lat_pad, lon_pad = (_half_step(lat, periodic=False), _half_step(lon, periodic=True)) if step > 1 else (0.0, 0.0)
    south, north = float(np.nanmin(lat)) - lat_pad, float(np.nanmax(lat)) + lat_pad
    south, north = (-90.0 if pole < 0 else max(south, -90.0)), (90.0 if pole > 0 else min(north, 90.0))
    both_caps = south < -POLAR_LATITUDE and north > POLAR_LATITUDE  # a whole orbit: no simple polygon
    footprint = None if both_caps else polygon_footprint(sides, pole)
    if pole or max(-south, north) > POLAR_LATITUDE:
        return Extent(-180.0, south, 180.0, north, footprint)
    west, east = longitude_arc(lon[np.isfinite(lon)], lon_pad)
    return Extent(west, south, east, north, footprint)


def _track_extent(coordinates: Coordinates) -> Extent | None:
    """Box of an along-track (1-D) file, antimeridian-aware, and its ground track as a (multi) line string."""
    (lat, step), (lon, _) = sample_with_step(coordinates.lat), sample_with_step(coordinates.lon)
    lat, lon = _valid_positions(lat.ravel(), lon.ravel())
    valid = np.isfinite(lat)
    if not valid.any():
        return None
    lat, lon = lat[valid], lon[valid]
    lat_pad, lon_pad = (_half_step(lat, periodic=False), _half_step(lon, periodic=True)) if step > 1 else (0.0, 0.0)
    south, north = max(float(lat.min()) - lat_pad, -90.0), min(float(lat.max()) + lat_pad, 90.0)
    polar = max(-south, north) > POLAR_LATITUDE
    west, east = (-180.0, 180.0) if polar else longitude_arc(lon, lon_pad)
    return Extent(west, south, east, north, track_footprint(lon, lat))


def longitude_arc(longitudes: FloatArray, pad: float = 0.0) -> tuple[float, float]:
    """West and east of the shortest arc holding every longitude: the complement of the widest gap between them
    (a swath's longitudes form one arc, so the widest gap is the part of the circle it does not cover)."""
    ordered = np.unique(longitudes)
    gaps = np.append(np.diff(ordered), ordered[0] + 360.0 - ordered[-1])
    widest = int(np.argmax(gaps))
    if 360.0 - float(gaps[widest]) + 2 * pad >= FULL_CIRCLE:
        return -180.0, 180.0
    west, east = float(ordered[(widest + 1) % ordered.size]) - pad, float(ordered[widest]) + pad
    return wrap_west(west), wrap_east(east)


def enclosed_pole(ring: FloatArray) -> int:
    """+1 or -1 when a closed ring of (lon, lat) points winds round the North or South Pole, else 0."""
    if len(ring) < 3:
        return 0
    turns = round(float(np.sum(wrap(np.diff(ring[:, 0], append=ring[:1, 0])))) / 360.0)
    if turns == 0:
        return 0
    return 1 if ring[np.argmax(np.abs(ring[:, 1])), 1] > 0 else -1


def extent_from_attributes(root: Any) -> Extent | None:
    """The box of the ACDD `geospatial_*` (or GDS `southernmost_latitude`...) attributes, when the coordinates
    cannot give one."""
    keys = ("geospatial_lat_min", "geospatial_lat_max", "geospatial_lon_min", "geospatial_lon_max")
    alternatives = ("southernmost_latitude", "northernmost_latitude", "westernmost_longitude", "easternmost_longitude")
    for names in (keys, alternatives):
        numbers = [_number(root.getncattr(name)) if name in root.ncattrs() else None for name in names]
        south, north, west, east = numbers
        if south is None or north is None or west is None or east is None:
            continue
        if east - west >= FULL_CIRCLE:
            west, east = -180.0, 180.0
        return Extent(wrap_west(west), max(min(south, north), -90.0), wrap_east(east), min(max(south, north), 90.0))
    return None


def _number(value: Any) -> float | None:
    """A number, or the leading number of a text such as CCMP's `0.125 degrees`."""
    if isinstance(value, str):
        match = re.match(r"\s*([-+]?\d+(\.\d*)?([eE][-+]?\d+)?)", value)
        return float(match.group(1)) if match else None
    try:
        number = float(np.asarray(value).ravel()[0])
    except (TypeError, ValueError, IndexError):
        return None
    return number if math.isfinite(number) else None


def sample_with_step(variable: Any) -> tuple[FloatArray, int]:
    """The values of a numeric variable as float64 with NaN where missing, and the stride used: all of a small
    variable; of a large one every step-th value along its last two dimensions plus the last row and column (at
    the first index of any leading dimension). A non-numeric or empty variable gives an empty array.

    Up to `MAX_WHOLE_READ` values are read in one call and sampled in memory: HDF5 decompresses whole chunks
    anyway, and L2P files often hold lat/lon in a single chunk, which several strided reads would pay again.
    """
    if not _is_numeric(variable) or variable.size == 0:
        return np.empty(0), 1
    if variable.ndim == 0:
        return _as_floats(variable[...]).reshape(1), 1
    lead: tuple[int, ...] = (0,) * max(variable.ndim - 2, 0)
    tail = variable.shape[len(lead) :]
    count = math.prod(tail)
    step = max(1, math.ceil((count / MAX_SAMPLES) ** (1 / len(tail))))
    if count <= MAX_WHOLE_READ:
        whole = variable[lead + (slice(None),) * len(tail)]
        return np.block(_sample_blocks(len(tail), step, lambda cut: _as_floats(whole[cut]))), step
    return np.block(_sample_blocks(len(tail), step, lambda cut: _as_floats(variable[lead + cut]))), step


def _sample_blocks(dims: int, step: int, read: Callable[[tuple[slice, ...]], FloatArray]) -> list[Any]:
    """The pieces of a sample, as `np.block` joins them: strided body, last column, last row, last corner."""
    if step == 1:
        whole = (slice(None),) * dims
        return [read(whole)] if dims == 1 else [[read(whole)]]
    every, last = slice(None, None, step), slice(-1, None)
    if dims == 1:
        return [read((every,)), read((last,))]
    return [[read((every, every)), read((every, last))], [read((last, every)), read((last, last))]]


def read_sample(variable: Any) -> FloatArray:
    """`sample_with_step` without the step."""
    return sample_with_step(variable)[0]


def _valid_positions(lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
    """NaN where either is missing or out of range; longitudes brought into [-180, 180)."""
    bad = ~(np.isfinite(lat) & np.isfinite(lon)) | (np.abs(lat) > 90.0) | (np.abs(lon) > 720.0)
    return np.where(bad, np.nan, lat), np.where(bad, np.nan, wrap(lon))


def _half_step(values: FloatArray, *, periodic: bool) -> float:
    """Half the largest difference between neighbouring samples: how far a pixel between two samples can go."""
    steps = []
    for axis in range(values.ndim):
        step = np.abs(np.diff(values, axis=axis)).ravel()
        steps.append(np.minimum(step, 360.0 - step) if periodic else step)
    every = np.concatenate(steps) if steps else np.empty(0)
    every = every[np.isfinite(every)]
    return float(every.max()) / 2 if every.size else 0.0


def wrap_west(longitude: float) -> float:
    return float(wrap(longitude))


def wrap_east(longitude: float) -> float:
    """As `wrap`, but an eastern edge on the antimeridian is 180, not -180."""
    wrapped = float(wrap(longitude))
    return 180.0 if wrapped == -180.0 and longitude > -180.0 else wrapped


def _as_floats(values: Any) -> FloatArray:
    return np.ma.filled(np.ma.asarray(values).astype(np.float64), np.nan)


def _is_numeric(variable: Any) -> bool:
    return getattr(variable.dtype, "kind", "O") in "iuf"


def _attribute(variable: Any, name: str) -> Any:
    return variable.getncattr(name) if name in variable.ncattrs() else None
