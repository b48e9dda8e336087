"""Match-ups: each sample of one dataset paired with the nearest sample of another within a distance and a time window.

Both datasets are flattened to samples (points, swath pixels or grid cells alike: a latitude, a longitude and a time
each, broadcast over the variables' dimensions; an L2P pixel's time is the granule's reference time plus its
`sst_dtime`, which spans an orbit's hour and more). Samples become unit vectors on the sphere, and a KD-tree
(`scipy.spatial.cKDTree`) finds every pair closer than the distance, as a chord; the pairs outside the time window are
dropped and, for each sample of `a`, the nearest remaining sample of `b` kept (the closest in time among equals).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr
from scipy.spatial import cKDTree

from nephelae.errors import InvalidInput
from nephelae.toolbox.subset import latitude_name, longitude_name

__all__ = ["EARTH_RADIUS_KM", "haversine_km", "matchups"]

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
PIXEL_TIME_OFFSET = "sst_dtime"  # GHRSST GDS 2.0 L2P: a pixel was observed at time + sst_dtime
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Samples:
    """The valid samples of a dataset, flat: where, when, and the values of the chosen variables."""

    lat: FloatArray
    lon: FloatArray
    time: npt.NDArray[np.datetime64]
    values: dict[str, npt.NDArray[Any]]
    attrs: dict[str, dict[str, Any]]

    def xyz(self) -> FloatArray:
        lat, lon = np.radians(self.lat), np.radians(self.lon)
        return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)

    def take(self, index: npt.NDArray[np.intp]) -> _Samples:
        values = {name: value[index] for name, value in self.values.items()}
        return _Samples(self.lat[index], self.lon[index], self.time[index], values, self.attrs)


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> FloatArray:
    """Great-circle distance in km between points given in degrees (numpy broadcasting)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi, dlambda = phi2 - phi1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlambda / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0, 1))), dtype=np.float64)


def matchups(
    a: xr.Dataset,
    b: xr.Dataset,
    *,
    max_distance_km: float,
    max_time_difference: dt.timedelta,
    variables_a: Sequence[str],
    variables_b: Sequence[str],
) -> xr.Dataset:
    """Pair every sample of `a` with the nearest sample of `b` within `max_distance_km` and `max_time_difference`.

    A sample is kept when one of its variables has a value. The result has one `matchup` dimension with, for each
    pair: `a_lat`, `a_lon`, `a_time` (coordinates), `b_lat`, `b_lon`, `b_time`, the variables as `a_<name>` and
    `b_<name>`, `distance` (km) and `time_difference` (b minus a, seconds). Samples of `a` with no partner are left
    out. The datasets are read into memory: subset them first.
    """
    if not isinstance(max_distance_km, int | float) or isinstance(max_distance_km, bool) or max_distance_km <= 0:
        raise InvalidInput(f"matchups: max_distance_km must be a positive number, not {max_distance_km!r}")
    if not isinstance(max_time_difference, dt.timedelta) or max_time_difference < dt.timedelta(0):
        raise InvalidInput("matchups: max_time_difference must be a non-negative timedelta")
    window = np.timedelta64(max_time_difference).astype("timedelta64[ns]")
    first = _samples(a, variables_a, "a")
    second = _samples(b, variables_b, "b")
    if first.time.size and second.time.size:  # only the part of b that can be in time with a
        near = (second.time >= first.time.min() - window) & (second.time <= first.time.max() + window)
        second = second.take(np.flatnonzero(near))
    pairs_a, pairs_b = _nearest_pairs(first, second, float(max_distance_km), window)
    return _matchup_dataset(first.take(pairs_a), second.take(pairs_b))


def _nearest_pairs(
    a: _Samples, b: _Samples, max_distance_km: float, window: np.timedelta64
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Indices (into a, into b) of each a sample's nearest b sample within the distance and the time window."""
    empty = np.array([], dtype=np.intp)
    if not a.lat.size or not b.lat.size:
        return empty, empty
    chord = 2 * np.sin(min(max_distance_km / EARTH_RADIUS_KM, np.pi) / 2)
    pairs = cKDTree(a.xyz()).sparse_distance_matrix(cKDTree(b.xyz()), chord, output_type="ndarray")
    i, j = pairs["i"].astype(np.intp), pairs["j"].astype(np.intp)
    lag = np.abs(b.time[j] - a.time[i])
    in_time = lag <= window
    i, j, lag = i[in_time], j[in_time], lag[in_time]
    distance = haversine_km(a.lat[i], a.lon[i], b.lat[j], b.lon[j])
    within = distance <= max_distance_km  # the chord test is exact up to rounding: decide on the distance itself
    i, j, distance, lag = i[within], j[within], distance[within], lag[within]
    order = np.lexsort(
        (j, lag.astype(np.int64), distance, i)
    )  # by a sample, then nearest, then closest in time, then first
    i, j = i[order], j[order]
    firsts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]]) if i.size else empty
    return i[firsts], j[firsts]


def _samples(ds: xr.Dataset, variables: Sequence[str], side: str) -> _Samples:
    """The dataset's samples that have a location, a time, and a value of at least one of the variables."""
    names = list(dict.fromkeys(variables))
    if not names:
        raise InvalidInput(f"matchups: name at least one variable of dataset {side}")
    missing = [name for name in names if name not in ds.data_vars]
    if missing:
        raise InvalidInput(
            f"matchups: dataset {side} has no variable {', '.join(missing)}; it has {', '.join(map(str, ds.data_vars))}"
        )
    if "time" not in ds.variables or ds["time"].dtype.kind != "M":
        raise InvalidInput(f"matchups: dataset {side} has no decoded time coordinate (datetime64) to match in time")
    lat, lon = ds[latitude_name(ds)], ds[longitude_name(ds)]
    offsets = [ds[PIXEL_TIME_OFFSET].reset_coords(drop=True)] if PIXEL_TIME_OFFSET in ds.data_vars else []
    fields = xr.broadcast(*(ds[name].reset_coords(drop=True) for name in names), lat, lon, ds["time"], *offsets)
    flat = [np.asarray(field.transpose(*fields[0].dims).values).ravel() for field in fields]
    values = dict(zip(names, flat[: len(names)], strict=True))
    lat_values, lon_values, times = (flat[len(names)].astype(np.float64), flat[len(names) + 1], flat[len(names) + 2])
    lon_values = lon_values.astype(np.float64)
    if offsets:
        times = times.astype("datetime64[ns]") + _offsets(flat[-1], ds[PIXEL_TIME_OFFSET].attrs)
    has_value = np.zeros(lat_values.shape, dtype=bool)
    for value in values.values():
        has_value |= ~_missing(value)
    keep = np.flatnonzero(has_value & np.isfinite(lat_values) & np.isfinite(lon_values) & ~np.isnat(times))
    attrs = {name: dict(ds[name].attrs) for name in names}
    samples = _Samples(lat_values, lon_values, times.astype("datetime64[ns]"), values, attrs)
    return samples.take(keep)


def _offsets(offsets: npt.NDArray[Any], attrs: dict[Any, Any]) -> npt.NDArray[np.timedelta64]:
    """`sst_dtime` as timedeltas (decoded already, or seconds); a pixel without one keeps the reference time."""
    if offsets.dtype.kind == "m":
        deltas = offsets.astype("timedelta64[ns]")
        return np.where(np.isnat(deltas), np.timedelta64(0, "ns"), deltas)
    if str(attrs.get("units", "")).strip() not in ("s", "second", "seconds"):
        raise InvalidInput(f"matchups: {PIXEL_TIME_OFFSET} has units {attrs.get('units')!r}, not seconds")
    seconds = np.nan_to_num(np.asarray(offsets, dtype=np.float64), nan=0.0)
    return np.asarray(np.round(seconds * 1e9).astype(np.int64).astype("timedelta64[ns]"))


def _missing(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    if values.dtype.kind == "f":
        return np.asarray(np.isnan(values), dtype=bool)
    if values.dtype.kind == "M":
        return np.asarray(np.isnat(values), dtype=bool)
    return np.zeros(values.shape, dtype=bool)


def _matchup_dataset(a: _Samples, b: _Samples) -> xr.Dataset:
    dim = "matchup"
    lat = {"units": "degrees_north"}
    lon = {"units": "degrees_east"}
    coords = {
        "a_lat": (dim, a.lat, lat | {"standard_name": "latitude", "long_name": "latitude of the sample of a"}),
        "a_lon": (dim, a.lon, lon | {"standard_name": "longitude", "long_name": "longitude of the sample of a"}),
        "a_time": (dim, a.time, {"standard_name": "time", "long_name": "time of the sample of a"}),
    }
    data: dict[str, Any] = {
        "b_lat": (dim, b.lat, lat | {"long_name": "latitude of the matched sample of b"}),
        "b_lon": (dim, b.lon, lon | {"long_name": "longitude of the matched sample of b"}),
        "b_time": (dim, b.time, {"long_name": "time of the matched sample of b"}),
        "distance": (
            dim,
            haversine_km(a.lat, a.lon, b.lat, b.lon),
            {"long_name": "great-circle distance", "units": "km"},
        ),
        "time_difference": (
            dim,
            (b.time - a.time) / np.timedelta64(1, "s"),
            {"long_name": "time of b minus time of a", "units": "s"},
        ),
    }
    for side, samples in (("a", a), ("b", b)):
        for name, values in samples.values.items():
            data[f"{side}_{name}"] = (dim, values, _value_attrs(samples.attrs[name]))
    result = xr.Dataset(data, coords=coords)
    result.attrs["featureType"] = "point"  # xarray names a_time a_lat a_lon in each variable's coordinates
    return result


def _value_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """A variable's descriptive attributes (its packing and flags apply to its file, not to the match-ups)."""
    kept = ("long_name", "standard_name", "units", "comment", "flag_values", "flag_masks", "flag_meanings")
    return {key: attrs[key] for key in kept if key in attrs}
