"""The demo fields dressed as real products: CF-1.8, ACDD-1.3 and GHRSST GDS 2.0 names, packing, flags and
attributes, modelled on the JPL MUR / UKMO OSTIA L4 and the NAVO / JPL L2P files.

Each builder returns an xarray dataset and the encoding to write it with (netCDF4, zlib, int16/int8 packing).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from nephelae.demo.fields import EPOCH, FloatArray, Grid, SstAnalysis
from nephelae.demo.swath import Swath, lon_extent
from nephelae.demo.weather import MET_GRID, SurfaceWeather

TIME_UNITS = "seconds since 1981-01-01 00:00:00"
Encoding = dict[str, dict[str, Any]]
_ZLIB = {"zlib": True, "complevel": 4, "shuffle": True}
_FLOAT_COORD = {"dtype": "float32", "_FillValue": None}
_GDS = {"gds_version_id": "2.0", "file_quality_level": 3}  # GHRSST files only


@dataclass(frozen=True)
class Product:
    """What the files of a demo dataset say about themselves (and what the catalog shows)."""

    id: str
    title: str
    summary: str
    variables: tuple[str, ...]


L4 = Product(
    "demo-l4-sst",
    "Demo GHRSST L4 foundation SST analysis, global 0.25 deg, daily",
    "Synthetic gap-free daily foundation SST in the GHRSST GDS 2.0 L4 format: seasonal cycle, fronts, moving "
    "mesoscale eddies, sea ice and a procedural land mask.",
    ("analysed_sst", "analysis_error", "sea_ice_fraction", "mask"),
)
L2P = Product(
    "demo-l2p-sst",
    "Demo GHRSST L2P skin SST swaths from a polar orbiter",
    "Synthetic GDS 2.0 L2P granules of a sun-synchronous radiometer (five ten-minute granules a day) with clouds, "
    "quality levels and SSES, including antimeridian crossings and polar passes.",
    ("sea_surface_temperature", "quality_level", "sses_bias", "sses_standard_deviation", "sst_dtime", "l2p_flags"),
)
MET = Product(
    "demo-surface-met",
    "Demo near-surface meteorology, global 0.5 deg, daily",
    "Synthetic daily 10 m wind, 2 m air temperature and 2 m humidity for air-sea heat fluxes: trade winds, "
    "westerlies and travelling storms, air temperature following the SST at sea.",
    ("eastward_wind", "northward_wind", "wind_speed", "air_temperature", "specific_humidity"),
)

_LAT = {
    "long_name": "latitude",
    "standard_name": "latitude",
    "units": "degrees_north",
    "valid_min": -90.0,
    "valid_max": 90.0,
}
_LON = {
    "long_name": "longitude",
    "standard_name": "longitude",
    "units": "degrees_east",
    "valid_min": -180.0,
    "valid_max": 180.0,
}
_KELVIN_RANGE = {"units": "kelvin", "valid_min": np.int16(-300), "valid_max": np.int16(4500)}
_SSES_RANGE = {"units": "kelvin", "valid_min": np.int8(-127), "valid_max": np.int8(127)}
_QUALITY_MEANINGS = "no_data bad_data worst_quality low_quality acceptable_quality best_quality"
_L4_ATTRS: dict[str, dict[str, Any]] = {
    "analysed_sst": {
        "long_name": "analysed sea surface temperature",
        "standard_name": "sea_surface_foundation_temperature",
        **_KELVIN_RANGE,
        "coverage_content_type": "physicalMeasurement",
        "source": "NEPHELAE-DEMO synthetic analysis",
        "comment": "foundation SST: seasonal cycle, fronts and mesoscale eddies (synthetic)",
    },
    "analysis_error": {
        "long_name": "estimated error standard deviation of analysed_sst",
        "standard_name": "sea_surface_foundation_temperature standard_error",
        "units": "kelvin",
        "valid_min": np.int16(0),
        "valid_max": np.int16(32767),
        "coverage_content_type": "qualityInformation",
    },
    "sea_ice_fraction": {
        "long_name": "sea ice area fraction",
        "standard_name": "sea_ice_area_fraction",
        "units": "1",
        "valid_min": np.int8(0),
        "valid_max": np.int8(100),
        "coverage_content_type": "auxiliaryInformation",
    },
    "mask": {
        "long_name": "sea/land field composite mask",
        "valid_min": np.int8(1),
        "valid_max": np.int8(15),
        "flag_masks": np.array([1, 2, 4, 8], dtype=np.int8),
        "flag_meanings": "water land optional_lake_surface sea_ice",
        "comment": "1=water, 2=land, 5=lake, 9=water with ice, 13=lake with ice",
        "coverage_content_type": "referenceInformation",
    },
}
_L2P_ATTRS: dict[str, dict[str, Any]] = {
    "sea_surface_temperature": {
        "long_name": "sea surface skin temperature",
        "standard_name": "sea_surface_skin_temperature",
        **_KELVIN_RANGE,
        "depth": "10 micrometres",
        "coverage_content_type": "physicalMeasurement",
        "source": "NEPHELAE-DEMO DEMORAD",
    },
    "sst_dtime": {
        "long_name": "time difference from reference time",
        "units": "seconds",
        "comment": "time plus sst_dtime gives the time of the scan line",
        "coverage_content_type": "referenceInformation",
    },
    "quality_level": {
        "long_name": "quality level of SST pixel",
        "valid_min": np.int8(0),
        "valid_max": np.int8(5),
        "flag_values": np.arange(6, dtype=np.int8),
        "flag_meanings": _QUALITY_MEANINGS,
        "comment": "use only 4 and 5 for quantitative work",
        "coverage_content_type": "qualityInformation",
    },
    "sses_bias": {"long_name": "SSES bias error based on proximity confidence flags", **_SSES_RANGE},
    "sses_standard_deviation": {
        "long_name": "SSES standard deviation error based on proximity confidence flags",
        **_SSES_RANGE,
    },
    "l2p_flags": {
        "long_name": "L2P flags",
        "flag_masks": np.array([1, 2, 4, 8, 16, 64, 128], dtype=np.int16),
        "flag_meanings": "microwave land ice lake river day cloud",
        "valid_min": np.int16(0),
        "valid_max": np.int16(255),
        "coverage_content_type": "qualityInformation",
    },
}
_MET_ATTRS: dict[str, dict[str, Any]] = {
    "eastward_wind": {"long_name": "10 m eastward wind", "standard_name": "eastward_wind", "units": "m s-1"},
    "northward_wind": {"long_name": "10 m northward wind", "standard_name": "northward_wind", "units": "m s-1"},
    "wind_speed": {"long_name": "10 m wind speed", "standard_name": "wind_speed", "units": "m s-1"},
    "air_temperature": {"long_name": "2 m air temperature", "standard_name": "air_temperature", "units": "K"},
    "specific_humidity": {
        "long_name": "2 m specific humidity",
        "standard_name": "specific_humidity",
        "units": "kg kg-1",
    },
}


def l4_dataset(analysis: SstAnalysis, grid: Grid, day: dt.date, seed: int) -> tuple[xr.Dataset, Encoding]:
    """The GDS 2.0 L4 file of a day: analysed_sst, analysis_error, sea_ice_fraction and mask on (time, lat, lon)."""
    values: dict[str, npt.NDArray[Any]] = {"analysed_sst": analysis.sst, "analysis_error": analysis.error}
    values |= {"sea_ice_fraction": analysis.ice, "mask": analysis.mask}
    data = {name: (("time", "lat", "lon"), values[name][None], attrs) for name, attrs in _L4_ATTRS.items()}
    noon = dt.datetime.combine(day, dt.time(12))
    dataset = xr.Dataset(data, coords={"time": _time(noon, "reference time of sst field"), **_grid_coords(grid)})
    midnight = noon - dt.timedelta(hours=12)
    dataset.attrs = _global_attrs(L4, seed, midnight, midnight + dt.timedelta(days=1)) | _grid_attrs(grid)
    dataset.attrs |= {"start_time": _iso(noon), "stop_time": _iso(noon), "processing_level": "L4", **_GDS}
    dataset.attrs |= {"platform": "DEMOSAT-1, in-situ", "sensor": "DEMORAD, in-situ"}
    chunks = (1, grid.shape[0] // 2, grid.shape[1] // 2)
    encoding: Encoding = {
        "analysed_sst": _packed("int16", 0.01, 273.15, -32768, chunks),
        "analysis_error": _packed("int16", 0.01, 0.0, -32768, chunks),
        "sea_ice_fraction": _packed("int8", 0.01, 0.0, -128, chunks),
        "mask": {"dtype": "int8", "_FillValue": np.int8(-128), "chunksizes": chunks, **_ZLIB},
    }
    return dataset, encoding | _coord_encoding()


def l2p_dataset(swath: Swath, seed: int) -> tuple[xr.Dataset, Encoding]:
    """A GDS 2.0 L2P granule: skin SST and its quality on the swath (time, nj scan lines, ni pixels), 2-D lat/lon."""
    values: dict[str, npt.NDArray[Any]] = {
        "sea_surface_temperature": swath.sst,
        "sst_dtime": swath.dtime,
        "quality_level": swath.quality,
    }
    values |= {"sses_bias": swath.bias, "sses_standard_deviation": swath.std, "l2p_flags": swath.flags}
    data = {name: (("time", "nj", "ni"), values[name][None], attrs) for name, attrs in _L2P_ATTRS.items()}
    coords = {"lat": (("nj", "ni"), swath.lat, _LAT), "lon": (("nj", "ni"), swath.lon, _LON)}
    dataset = xr.Dataset(data, coords={"time": _time(swath.start, "reference time of sst file"), **coords})
    end = swath.start + dt.timedelta(seconds=float(swath.dtime[-1, 0]))
    dataset.attrs = _global_attrs(L2P, seed, swath.start, end) | _swath_attrs(swath.lat, swath.lon)
    chunks = (1, *swath.lat.shape)
    encoding: Encoding = {
        "sea_surface_temperature": _packed("int16", 0.01, 273.15, -32768, chunks),
        "sst_dtime": _packed("int16", 1.0, 0.0, -32768, chunks),
        "quality_level": {"dtype": "int8", "_FillValue": np.int8(-128), "chunksizes": chunks, **_ZLIB},
        "sses_bias": _packed("int8", 0.01, 0.0, -128, chunks),
        "sses_standard_deviation": _packed("int8", 0.01, 1.0, -128, chunks),
        "l2p_flags": {"dtype": "int16", "_FillValue": None, "chunksizes": chunks, **_ZLIB},
        "lat": {**_FLOAT_COORD, "chunksizes": chunks[1:], "least_significant_digit": 4, **_ZLIB},
        "lon": {**_FLOAT_COORD, "chunksizes": chunks[1:], "least_significant_digit": 4, **_ZLIB},
    }
    return dataset, _coord_encoding() | encoding


def met_dataset(weather: SurfaceWeather, day: dt.date, seed: int) -> tuple[xr.Dataset, Encoding]:
    """The daily surface meteorology file: 10 m wind components and speed, 2 m air temperature and humidity.

    The wind components are rounded to their packing first, so that the stored speed is their exact hypot.
    """
    u, v = np.round(weather.eastward_wind, 2), np.round(weather.northward_wind, 2)
    values = {"eastward_wind": u, "northward_wind": v, "wind_speed": np.hypot(u, v)}
    values |= {"air_temperature": weather.air_temperature, "specific_humidity": weather.specific_humidity}
    data = {name: (("time", "lat", "lon"), values[name][None], _met_attrs(name)) for name in _MET_ATTRS}
    midnight = dt.datetime.combine(day, dt.time())
    time = _time(midnight + dt.timedelta(hours=12), "centre of the averaging period").assign_attrs(bounds="time_bnds")
    dataset = xr.Dataset(data, coords={"time": time, **_grid_coords(MET_GRID), **_heights()})
    bounds = [_seconds(midnight), _seconds(midnight + dt.timedelta(days=1))]
    dataset["time_bnds"] = (("time", "nv"), np.array([bounds], dtype=np.int32))
    dataset["time_bnds"].encoding["coordinates"] = None  # the heights do not apply to the bounds
    dataset.attrs = _global_attrs(MET, seed, midnight, midnight + dt.timedelta(days=1)) | _grid_attrs(MET_GRID)
    dataset.attrs |= {"processing_level": "L4", "platform": "synthetic reanalysis", "sensor": "none (model)"}
    chunks, offsets = (1, *MET_GRID.shape), {"air_temperature": 273.15}
    scales = {"eastward_wind": 0.01, "northward_wind": 0.01, "wind_speed": 0.01}
    scales |= {"air_temperature": 0.01, "specific_humidity": 1e-6}
    encoding = {name: _packed("int16", scales[name], offsets.get(name, 0.0), -32768, chunks) for name in scales}
    encoding |= {"time_bnds": {"_FillValue": None}, "height_10m": _FLOAT_COORD}
    return dataset, encoding | _coord_encoding() | {"height_2m": _FLOAT_COORD}


def _met_attrs(name: str) -> dict[str, Any]:
    height = "height_10m" if "wind" in name else "height_2m"
    extra = {"coverage_content_type": "modelResult", "cell_methods": "time: mean", "coordinates": f"{height} lat lon"}
    return _MET_ATTRS[name] | extra


def _heights() -> dict[str, xr.DataArray]:
    attrs = {"long_name": "height above the surface", "standard_name": "height", "units": "m", "positive": "up"}
    return {f"height_{metres}m": xr.DataArray(float(metres), attrs=attrs | {"axis": "Z"}) for metres in (10, 2)}


def _iso(moment: dt.datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%SZ}"


def _global_attrs(product: Product, seed: int, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """ACDD and GDS 2.0 global attributes shared by every demo file."""
    now = _iso(dt.datetime.now(dt.UTC))
    return {
        "Conventions": "CF-1.8, ACDD-1.3",
        "title": product.title,
        "summary": product.summary,
        "id": product.id.upper().replace("-", "_"),
        "naming_authority": "org.nephelae",
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"nephelae-demo/{product.id}/{seed}/{_iso(start)}")),
        "institution": "Nephelae demo",
        "creator_name": "Nephelae demo generator",
        "project": "Nephelae",
        "source": "synthetic fields from nephelae.demo (no observation was used)",
        "comment": "Synthetic data for demonstrations and tests: plausible, but not a measurement of anything.",
        "history": f"{now} created by nephelae.demo with seed {seed}",
        "license": "CC0-1.0: synthetic data, free of any restriction.",
        "keywords": "Oceans > Ocean Temperature > Sea Surface Temperature",
        "keywords_vocabulary": "NASA Global Change Master Directory (GCMD) Science Keywords",
        "standard_name_vocabulary": "CF Standard Name Table v79",
        "netcdf_version_id": _netcdf_version(),
        "product_version": "1.0",
        "date_created": now,
        "start_time": _iso(start),
        "stop_time": _iso(end),
        "time_coverage_start": _iso(start),
        "time_coverage_end": _iso(end),
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_units": "degrees_east",
    }


def _netcdf_version() -> str:
    import netCDF4  # the engine that writes the files (no type information, hence the local import)

    return str(netCDF4.__netcdf4libversion__)


def _grid_attrs(grid: Grid) -> dict[str, Any]:
    half = grid.step / 2
    bounds = {"geospatial_lat_min": -90.0, "geospatial_lat_max": 90.0}
    bounds |= {"geospatial_lon_min": -180.0, "geospatial_lon_max": 180.0}
    edges = {"southernmost_latitude": -90.0 + half, "northernmost_latitude": 90.0 - half}
    edges |= {"westernmost_longitude": -180.0 + half, "easternmost_longitude": 180.0 - half}
    resolution = {"geospatial_lat_resolution": grid.step, "geospatial_lon_resolution": grid.step}
    extra = {"spatial_resolution": f"{grid.step} degree", "cdm_data_type": "grid", "time_coverage_resolution": "P1D"}
    return bounds | edges | resolution | extra


def _swath_attrs(lat: FloatArray, lon: FloatArray) -> dict[str, Any]:
    west, east = lon_extent(lat, lon)
    south, north = round(float(lat.min()), 3), round(float(lat.max()), 3)
    bounds = {"geospatial_lat_min": south, "geospatial_lat_max": north}
    bounds |= {"geospatial_lon_min": west, "geospatial_lon_max": east}
    edges = {"southernmost_latitude": south, "northernmost_latitude": north}
    edges |= {"westernmost_longitude": west, "easternmost_longitude": east}
    resolution = {"geospatial_lat_resolution": 0.09, "geospatial_lon_resolution": 0.09}
    extra = {"spatial_resolution": "10 km at nadir", "cdm_data_type": "swath", "processing_level": "L2P"}
    return bounds | edges | resolution | extra | {"platform": "DEMOSAT-1", "sensor": "DEMORAD", **_GDS}


def _time(moment: dt.datetime, long_name: str) -> xr.DataArray:
    """The time coordinate, stored as GHRSST does: int32 seconds since 1981 (written as is, not re-encoded, so
    that the units keep their time of day, as in real files)."""
    attrs = {"long_name": long_name, "standard_name": "time", "axis": "T", "units": TIME_UNITS}
    attrs |= {"calendar": "gregorian", "coverage_content_type": "coordinate"}
    return xr.DataArray(np.array([_seconds(moment)], dtype=np.int32), dims="time", attrs=attrs)


def _seconds(moment: dt.datetime) -> int:
    return round((moment - EPOCH).total_seconds())


def _grid_coords(grid: Grid) -> dict[str, xr.DataArray]:
    lat = _LAT | {"axis": "Y", "coverage_content_type": "coordinate"}
    lon = _LON | {"axis": "X", "coverage_content_type": "coordinate"}
    return {"lat": xr.DataArray(grid.lat, dims="lat", attrs=lat), "lon": xr.DataArray(grid.lon, dims="lon", attrs=lon)}


def _coord_encoding() -> Encoding:
    return {"time": {"_FillValue": None}, "lat": _FLOAT_COORD, "lon": _FLOAT_COORD}


def _packed(dtype: str, scale: float, offset: float, fill: int, chunks: tuple[int, ...]) -> dict[str, Any]:
    packing = {"dtype": dtype, "scale_factor": scale, "add_offset": offset, "_FillValue": fill}
    return packing | {"chunksizes": chunks, **_ZLIB}
