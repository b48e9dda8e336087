"""The demo polar orbiter: swath geometry, the granules of a day and their L2P skin SST fields (pure numpy).

The orbit is a sun-synchronous circular one; granules are tenths of an orbit, numbered from the GHRSST epoch, so a
granule is identified by one integer and its geolocation is a closed-form function of it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nephelae.demo.fields import (
    EPOCH,
    BoolArray,
    Earth,
    FloatArray,
    SstAnalysis,
    days_since_epoch,
    hashed_uniform,
    interp_axis,
    sketch_land,
    wrap_lon,
)

# A sun-synchronous polar orbiter crossing the equator northward at 13:30 local solar time.
ORBIT_PERIOD_S = 101.0 * 60
INCLINATION = math.radians(98.7)
ASCENDING_NODE = math.radians(13.5 * 15)
SEGMENTS_PER_ORBIT = 10  # a granule is a tenth of an orbit (about 10 minutes, 4000 km)
SCAN_LINES, SCAN_PIXELS = 400, 200
SWATH_HALF_ANGLE = math.radians(9.0)  # Earth-central angle: a 2000 km wide swath
NORTH_POLAR, SOUTH_POLAR = 2, 7  # segments holding the northern- and southernmost points of the orbit
# SSES by quality level (0 no data .. 5 best): bias and standard deviation, kelvin.
_SSES_BIAS = np.array([np.nan, np.nan, -0.4, -0.2, -0.1, -0.05])
_SSES_STD = np.array([np.nan, np.nan, 0.9, 0.6, 0.45, 0.35])


def segment_start(segment: int) -> dt.datetime:
    """Start time of an orbit segment (segments are numbered from the epoch)."""
    return EPOCH + dt.timedelta(seconds=segment * ORBIT_PERIOD_S / SEGMENTS_PER_ORBIT)


def geolocate(seconds: FloatArray, across: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Latitude and longitude of pixels at scan times (s since epoch) x across-track angles (radians).

    The orbit plane is fixed in a frame turning with the mean sun, where longitude is local solar time; the
    Earth-fixed longitude is that angle minus the hour angle of Greenwich.
    """
    u = 2 * np.pi * seconds / ORBIT_PERIOD_S
    cos_i, sin_i = math.cos(INCLINATION), math.sin(INCLINATION)
    cos_o, sin_o = math.cos(ASCENDING_NODE), math.sin(ASCENDING_NODE)
    track = np.stack(
        [
            np.cos(u) * cos_o - np.sin(u) * cos_i * sin_o,
            np.cos(u) * sin_o + np.sin(u) * cos_i * cos_o,
            np.sin(u) * sin_i,
        ],
        axis=-1,
    )
    normal = np.array([sin_o * sin_i, -cos_o * sin_i, cos_i])
    pixels = track[..., None, :] * np.cos(across)[:, None] + normal * np.sin(across)[:, None]
    lat = np.degrees(np.arcsin(np.clip(pixels[..., 2], -1, 1)))
    solar = np.degrees(np.arctan2(pixels[..., 1], pixels[..., 0]))
    greenwich = (seconds % 86400.0) / 86400.0 * 360.0
    return lat, wrap_lon(solar - greenwich[..., None])


def day_segments(seed: int, day: dt.date, count: int = 5) -> list[int]:
    """The orbit segments published as granules on a day, in time order: one crossing the antimeridian at low
    latitude, one polar pass (north on even days, south on odd days), and seeded others mostly over the ocean."""
    start = days_since_epoch(dt.datetime.combine(day, dt.time())) * 86400.0
    period = ORBIT_PERIOD_S / SEGMENTS_PER_ORBIT
    segments = np.arange(math.ceil(start / period), math.ceil((start + 86400.0) / period))
    seconds = segments[:, None] * period + np.linspace(0, period, 9)[None, :]
    lat, lon = geolocate(seconds, np.array([-SWATH_HALF_ANGLE, 0.0, SWATH_HALF_ANGLE]))
    phase = segments % SEGMENTS_PER_ORBIT
    polar = (phase == NORTH_POLAR) | (phase == SOUTH_POLAR)
    crossing = (lon.max(axis=(1, 2)) > 150) & (lon.min(axis=(1, 2)) < -150) & ~polar
    oceanic = sketch_land(lat, lon).mean(axis=(1, 2)) < 0.5
    wanted_pole = NORTH_POLAR if day.toordinal() % 2 == 0 else SOUTH_POLAR
    order = [int(i) for i in np.argsort(hashed_uniform(seed, 30, day.toordinal(), segments))]
    chosen = [_first(order, crossing), _first(order, phase == wanted_pole)]
    others = [i for i in order if not (crossing[i] or polar[i] or i in chosen)]
    others.sort(key=lambda i: not oceanic[i])  # stable: seeded order within the oceanic ones, then the rest
    return sorted(int(segments[i]) for i in chosen + others[: count - 2])


def _first(order: list[int], eligible: BoolArray) -> int:
    return next(i for i in order if eligible[i])


@dataclass(frozen=True)
class Swath:
    """One L2P granule: geolocation, skin SST and its GDS2 quality fields, on (scan line, pixel)."""

    start: dt.datetime
    lat: FloatArray
    lon: FloatArray
    dtime: FloatArray  # seconds from `start`
    sst: FloatArray  # kelvin, NaN where there is no retrieval
    quality: npt.NDArray[np.int8]  # 0 no data .. 5 best
    bias: FloatArray
    std: FloatArray
    flags: npt.NDArray[np.int16]


def swath(earth: Earth, analysis: SstAnalysis, segment: int) -> Swath:
    """A granule seen by the orbiter: the L4 field sampled along the swath and turned into a skin temperature with
    a diurnal warming, noise and seeded clouds, with GDS 2.0 quality levels, SSES and flags."""
    start = segment_start(segment)
    dtime = np.arange(SCAN_LINES, dtype=np.float64) * (ORBIT_PERIOD_S / SEGMENTS_PER_ORBIT / SCAN_LINES)
    across = np.linspace(-SWATH_HALF_ANGLE, SWATH_HALF_ANGLE, SCAN_PIXELS)
    lat, lon = geolocate(days_since_epoch(start) * 86400.0 + dtime, across)
    rows, cols = earth.grid.index(lat, lon)
    midnight = dt.datetime.combine(start.date(), dt.time())
    local_hour = ((start - midnight).total_seconds() + dtime[:, None]) / 3600 + lon / 15
    rng = np.random.default_rng([earth.seed, 40, segment])
    cloud = _cloud_field(rng)
    land, lake, ice = earth.land[rows, cols], earth.lake[rows, cols], analysis.ice[rows, cols] > 0.15
    off_nadir = (across[None, :] / SWATH_HALF_ANGLE) ** 2  # retrievals degrade towards the swath edges
    nadir = off_nadir < 0.36
    quality = np.select([land, ice | (cloud > 0.35), cloud > 0.1, cloud > 0.0, nadir], [0, 1, 2, 3, 5], default=4)
    warming = 0.3 * np.clip(np.cos((local_hour - 14) * np.pi / 12), 0, None)  # afternoon diurnal warm layer
    skin = analysis.sst[rows, cols] - 0.17 + warming - 0.8 * np.clip(cloud, 0, 1) + rng.normal(0, 0.2, lat.shape)
    daytime = np.abs(local_hour % 24 - 12) < 6
    flags = 2 * land + 4 * ice + 8 * lake + 64 * daytime + 128 * (cloud > 0.0)
    return Swath(
        start=start,
        lat=lat,
        lon=lon,
        dtime=np.broadcast_to(dtime[:, None], lat.shape).copy(),
        sst=np.where(quality >= 2, skin, np.nan),
        quality=quality.astype(np.int8),
        bias=_SSES_BIAS[quality] - 0.1 * off_nadir,
        std=_SSES_STD[quality] + 0.15 * off_nadir,
        flags=flags.astype(np.int16),
    )


def _cloud_field(rng: np.random.Generator) -> FloatArray:
    """Random cloudiness, positive where cloudy: about a third of the swath, a fifth with no retrieval."""
    lines, pixels = np.arange(SCAN_LINES, dtype=np.float64), np.arange(SCAN_PIXELS, dtype=np.float64)
    total = np.zeros((SCAN_LINES, SCAN_PIXELS))
    for cell, amplitude in ((40.0, 1.0), (12.0, 0.4), (4.0, 0.15)):  # decks, cells, ragged edges
        knots = rng.normal(size=(int(SCAN_LINES // cell) + 2, int(SCAN_PIXELS // cell) + 2))
        along = interp_axis(knots, cell * np.arange(knots.shape[0], dtype=np.float64), lines, 0, smooth=True)
        total += amplitude * interp_axis(
            along, cell * np.arange(knots.shape[1], dtype=np.float64), pixels, 1, smooth=True
        )
    return total - 0.45


def lon_extent(lat: FloatArray, lon: FloatArray) -> tuple[float, float]:
    """West and east bounds of the smallest arc holding every longitude; west > east when the arc crosses the
    antimeridian (the ACDD convention), -180 and 180 when the swath reaches a pole."""
    if np.abs(lat).max() > 89.5:
        return -180.0, 180.0
    ordered = np.unique(np.round(lon, 3))
    gaps = np.append(np.diff(ordered), ordered[0] + 360.0 - ordered[-1])
    widest = int(np.argmax(gaps))
    if gaps[widest] < 5.0:
        return -180.0, 180.0
    return float(ordered[(widest + 1) % len(ordered)]), float(ordered[widest])
