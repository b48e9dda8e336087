"""Demo near-surface weather for air-sea fluxes: 10 m wind, 2 m air temperature and humidity (pure numpy)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from nephelae.demo.fields import (
    KELVIN,
    Earth,
    FloatArray,
    Grid,
    SstAnalysis,
    days_since_epoch,
    hashed_uniform,
    wave_noise,
)

MET_GRID = Grid(0.5)
EARTH_RADIUS_M = 6.371e6
_WIND_LAT = np.array([-90, -75, -60, -50, -45, -35, -28, -15, -5, 0, 5, 15, 25, 32, 45, 55, 65, 75, 90.0])
_WIND_U = np.array([0, -5, 3, 9, 10, 5, 0, -6, -4, -3, -4, -7, -3, 0, 7, 6, 0, -2, 0.0])
_WIND_V = np.array([0, 1, 0, 1, 1, 0.5, 0, 2.5, 2, 2, 0, -3, -1, 0, 1, 0.5, 0, 0, 0.0])
_LAND_T_LAT = np.array([-90, -75, -60, -40, -20, 0, 20, 30, 40, 50, 60, 70, 80, 90.0])
_LAND_T_MEAN = np.array([-50, -35, -10, 13, 24, 26, 25, 20, 12, 5, -2, -10, -18, -20.0])
_LAND_T_AMPLITUDE = np.array([12, 12, 8, 6, 3, 1, 4, 8, 10, 14, 18, 18, 15, 15.0])


@dataclass(frozen=True)
class SurfaceWeather:
    """One day of near-surface weather on MET_GRID: 10 m wind, 2 m air temperature and specific humidity."""

    eastward_wind: FloatArray  # m s-1
    northward_wind: FloatArray  # m s-1
    air_temperature: FloatArray  # kelvin
    specific_humidity: FloatArray  # kg kg-1


def saturation_specific_humidity(temperature_k: FloatArray, pressure_hpa: float = 1013.25) -> FloatArray:
    """Saturation specific humidity over water (Bolton 1980 vapour pressure)."""
    celsius = temperature_k - KELVIN
    vapour = 6.112 * np.exp(17.67 * celsius / (celsius + 243.5))
    return np.asarray(0.622 * vapour / (pressure_hpa - 0.378 * vapour), dtype=np.float64)


def surface_weather(earth: Earth, analysis: SstAnalysis, day: dt.date) -> SurfaceWeather:
    """Trades, westerlies and eastward-travelling storms over an air temperature that follows the SST at sea."""
    t = days_since_epoch(dt.datetime.combine(day, dt.time(12)))
    lat = MET_GRID.lat[:, None]
    winter = np.cos(2 * np.pi * (day.timetuple().tm_yday - np.where(lat > 0, 15, 196)) / 365.25)
    winter = winter * np.clip(np.abs(lat) / 30, 0, 1)  # 1 in mid-winter, no season at the equator
    factor = round(MET_GRID.step / earth.grid.step)
    land = _block_mean(earth.land.astype(np.float64), factor)  # land fraction of each cell
    (storm_u, storm_v), (eddy_u, eddy_v) = _storms(earth.seed, t), _eddy_wind(earth.seed, t)
    calm = 1 - 0.4 * land  # rougher land slows the wind
    u = (np.interp(lat, _WIND_LAT, _WIND_U) * (1 + 0.3 * winter) + storm_u + eddy_u) * calm
    v = (np.interp(lat, _WIND_LAT, _WIND_V) + storm_v + eddy_v) * calm
    advection = 0.4 * (storm_v + eddy_v) * np.tanh(lat / 10)  # poleward flow brings warm air
    air = _air_temperature(analysis, factor, land, winter) + advection
    noise = wave_noise(MET_GRID, earth.seed, 50, 24, 16, t)
    humidity = np.clip(0.8 + 0.06 * noise - 0.25 * land * np.exp(-(((np.abs(lat) - 25) / 10) ** 2)), 0.4, 0.95)
    return SurfaceWeather(u, v, air, humidity * saturation_specific_humidity(air))


def _air_temperature(analysis: SstAnalysis, factor: int, land: FloatArray, winter: FloatArray) -> FloatArray:
    """About 1 K below the SST at sea, colder over sea ice, a zonal climate with strong seasons over land."""
    lat = MET_GRID.lat[:, None]
    over_land = KELVIN + np.interp(lat, _LAND_T_LAT, _LAND_T_MEAN)
    over_land = over_land - winter * np.interp(lat, _LAND_T_LAT, _LAND_T_AMPLITUDE)
    over_sea = _fill_gaps(_block_mean(analysis.sst, factor)) - 1.0
    ice = np.nan_to_num(_block_mean(analysis.ice, factor))
    over_sea = over_sea * (1 - ice) + np.minimum(over_land, over_sea) * ice
    coast = _smooth(land)
    return np.asarray(coast * over_land + (1 - coast) * over_sea, dtype=np.float64)


def _storms(seed: int, t: float) -> tuple[FloatArray, FloatArray]:
    """Non-divergent wind of eastward-travelling waves in each hemisphere's storm track (about 10 deg/day)."""
    phi = np.radians(MET_GRID.lat)[:, None]
    lam = np.radians(MET_GRID.lon)[None, :]
    u, v = np.zeros(MET_GRID.shape), np.zeros(MET_GRID.shape)
    draws = hashed_uniform(seed, 51, np.arange(12)[:, None], np.arange(4))
    for k, (a, b, c, d) in enumerate(draws):
        centre, width = math.radians(47.0 if k % 2 == 0 else -50.0), math.radians(12.0)
        wavenumber = 4 + math.floor(6 * a)
        theta = wavenumber * (lam - math.radians(8 + 5 * b) * t) + 2 * np.pi * c
        envelope = np.exp(-(((phi - centre) / width) ** 2))
        speed = 3.5 + 4 * d  # m s-1 of meridional wind at the storm-track centre
        stream = speed * EARTH_RADIUS_M * math.cos(centre) / wavenumber * envelope
        v += -stream * wavenumber * np.sin(theta) / (EARTH_RADIUS_M * np.cos(phi))
        u += 2 * (phi - centre) / width**2 * stream * np.cos(theta) / EARTH_RADIUS_M
    return u, v


def _eddy_wind(seed: int, t: float, rms: float = 2.4) -> tuple[FloatArray, FloatArray]:
    """Non-divergent wind of a random streamfunction that changes over a few days: the weather between storms."""
    phi = np.radians(MET_GRID.lat)[:, None]
    stream = wave_noise(MET_GRID, seed, 52, 32, 14, 12 * t) * np.cos(phi) ** 2
    step = math.radians(MET_GRID.step)
    u = -np.gradient(stream, step, axis=0)
    v = (np.roll(stream, -1, axis=1) - np.roll(stream, 1, axis=1)) / (2 * step * np.cos(phi))
    scale = rms / math.sqrt(float(np.mean(u**2 + v**2)) / 2)
    return u * scale, v * scale


def _block_mean(field: FloatArray, factor: int) -> FloatArray:
    """Average of factor x factor blocks of the earth grid onto MET_GRID, ignoring NaN (NaN where all are)."""
    blocks = field.reshape(MET_GRID.shape[0], factor, MET_GRID.shape[1], factor)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _fill_gaps(field: FloatArray) -> FloatArray:
    """NaN cells (land) replaced by the mean of their latitude row, so that land-sea blends stay finite."""
    valid = np.isfinite(field)
    count = valid.sum(axis=1, keepdims=True)
    row_mean = np.where(valid, field, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1)
    return np.where(valid, field, np.where(count > 0, row_mean, KELVIN - 20.0))


def _smooth(field: FloatArray) -> FloatArray:
    """A 3x3 box average (periodic in longitude), to soften coastlines."""
    padded = np.pad(field, ((1, 1), (0, 0)), mode="edge")
    rows = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
    return np.asarray((np.roll(rows, 1, axis=1) + rows + np.roll(rows, -1, axis=1)) / 3, dtype=np.float64)
