"""Turbulent air-sea fluxes (latent and sensible heat, wind stress) by the COARE 3.6 bulk algorithm of `pycoare`.

`pycoare` works on 1-D numpy arrays in degC, % relative humidity and hPa; `heat_fluxes` takes CF-described fields
(SST and air temperature in K or degC, specific humidity in kg/kg or g/kg), converts them, and applies the algorithm
block by block through `xarray.apply_ufunc`, lazily over dask chunks. Pixels missing any input come out missing.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import xarray as xr
from pycoare import coare_36
from pycoare.util import qsat

from nephelae.errors import InvalidInput
from nephelae.toolbox.subset import latitude_name, longitude_name

__all__ = ["heat_fluxes", "regrid_like"]

ZERO_CELSIUS = 273.15
DEFAULT_PRESSURE_HPA = 1015.0  # pycoare's own default: the inputs carry no surface pressure
KELVIN = frozenset({"K", "kelvin", "Kelvin", "degK", "degree_Kelvin", "degrees_Kelvin"})
CELSIUS = frozenset({"degC", "celsius", "Celsius", "degree_Celsius", "degrees_Celsius", "deg_C", "C"})
KG_PER_KG = frozenset({"kg kg-1", "kg/kg", "kg.kg-1", "1", ""})
G_PER_KG = frozenset({"g kg-1", "g/kg", "g.kg-1"})
SPEED = frozenset({"m s-1", "m/s", "m.s-1", "meter second-1", "meters per second"})
WIND_COMPONENTS = frozenset({"eastward_wind", "northward_wind", "x_wind", "y_wind"})

FloatArray = npt.NDArray[np.float64]

OUTPUTS: dict[str, dict[str, str]] = {
    "surface_upward_latent_heat_flux": {
        "standard_name": "surface_upward_latent_heat_flux",
        "long_name": "latent heat flux from the ocean to the atmosphere (COARE 3.6)",
        "units": "W m-2",
    },
    "surface_upward_sensible_heat_flux": {
        "standard_name": "surface_upward_sensible_heat_flux",
        "long_name": "sensible heat flux from the ocean to the atmosphere (COARE 3.6)",
        "units": "W m-2",
    },
    "magnitude_of_surface_downward_stress": {
        "standard_name": "magnitude_of_surface_downward_stress",
        "long_name": "wind stress on the ocean surface (COARE 3.6)",
        "units": "N m-2",
    },
}


def heat_fluxes(
    sst: xr.DataArray,
    wind_speed: xr.DataArray,
    air_temperature: xr.DataArray,
    specific_humidity: xr.DataArray,
    *,
    zu: float = 10.0,
    zt: float = 2.0,
    zq: float = 2.0,
    pressure: float = DEFAULT_PRESSURE_HPA,
) -> xr.Dataset:
    """Latent and sensible heat fluxes (W m-2, positive upward) and the wind stress magnitude (N m-2), COARE 3.6.

    The four fields must be on a common grid (xarray aligns them exactly: put them on one grid first). `zu` is the
    height of the wind, `zt` of the air temperature and `zq` of the humidity, in metres; `pressure` is the surface
    air pressure in hPa. The SST is taken as a bulk (foundation) temperature, so COARE's cool-skin correction
    applies. The latitude, when the SST has a latitude coordinate, sets the gravity. Dask inputs give a lazy result.
    """
    for name, height in (("zu", zu), ("zt", zt), ("zq", zq)):
        if not isinstance(height, int | float) or isinstance(height, bool) or not 0 < height <= 200:
            raise InvalidInput(f"heat_fluxes: {name} must be a height in metres in (0, 200], not {height!r}")
    ts = _celsius(sst, "sst")
    ta = _celsius(air_temperature, "air_temperature")
    q = _kg_per_kg(specific_humidity)
    u = _speed(wind_speed)
    lat = _latitude(sst)
    try:
        ts, ta, q, u, lat = xr.align(ts, ta, q, u, lat, join="exact")
    except ValueError as error:
        raise InvalidInput(
            f"heat_fluxes: the fields are not on one grid ({error}); put them on a common grid"
        ) from None
    kwargs = {"zu": float(zu), "zt": float(zt), "zq": float(zq), "pressure": float(pressure)}
    outputs = xr.apply_ufunc(
        _coare_block,
        u,
        ta,
        q,
        ts,
        lat,
        kwargs=kwargs,
        output_core_dims=[[], [], []],
        dask="parallelized",
        output_dtypes=[np.float64] * 3,
    )
    result = xr.Dataset({name: output.rename(name) for name, output in zip(OUTPUTS, outputs, strict=True)})
    for name, attrs in OUTPUTS.items():  # replaced, not merged: apply_ufunc keeps the first input's (the wind's)
        result[name].attrs = dict(attrs)
    for variable in result.data_vars.values():
        variable.attrs["comment"] = (
            f"COARE 3.6 bulk algorithm (pycoare), wind at {zu:g} m, air temperature at {zt:g} m, humidity at "
            f"{zq:g} m, surface pressure {pressure:g} hPa"
        )
    return result


def _coare_block(
    u: FloatArray, ta: FloatArray, q: FloatArray, ts: FloatArray, lat: FloatArray, **kwargs: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """COARE on one block: pycoare takes 1-D arrays, so the complete pixels are flattened and put back."""
    u, ta, q, ts, lat = np.broadcast_arrays(u, ta, q, ts, lat)
    outputs = [np.full(u.shape, np.nan) for _ in range(3)]
    complete = np.isfinite(u) & np.isfinite(ta) & np.isfinite(q) & np.isfinite(ts) & np.isfinite(lat)
    if not complete.any():
        return outputs[0], outputs[1], outputs[2]
    pressure = kwargs["pressure"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pycoare's intermediate powers of cold waters; outputs finite
        rh = _relative_humidity(ta[complete], pressure, q[complete])
        coare = coare_36(
            u[complete],
            t=ta[complete],
            rh=rh,
            ts=ts[complete],
            lat=lat[complete],
            p=np.full(rh.shape, pressure),
            zu=kwargs["zu"],
            zt=kwargs["zt"],
            zq=kwargs["zq"],
            jcool=1,
        )
    for output, values in zip(outputs, (coare.fluxes.hlb, coare.fluxes.hsb, coare.fluxes.tau), strict=True):
        output[complete] = values
    return outputs[0], outputs[1], outputs[2]


def _relative_humidity(t: FloatArray, pressure: float, q: FloatArray) -> FloatArray:
    """Relative humidity (%) from specific humidity (kg/kg): the exact inverse of pycoare's `qair`, by which COARE
    turns it back into specific humidity, so that the algorithm sees the given humidity (pycoare's `rhcalc` uses a
    slightly different constant, 0.622 for 0.62197, off by up to 0.1 % of the latent heat flux)."""
    vapour_pressure = q * pressure / (0.62197 + 0.378 * q)
    return np.asarray(100.0 * vapour_pressure / qsat(t, pressure), dtype=np.float64)


def _units(field: xr.DataArray) -> str:
    return str(field.attrs.get("units", "")).strip()


def _celsius(field: xr.DataArray, what: str) -> xr.DataArray:
    units = _units(field)
    if units in KELVIN:
        return (field - ZERO_CELSIUS).astype(np.float64)
    if units in CELSIUS:
        return field.astype(np.float64)
    raise InvalidInput(
        f"heat_fluxes: {what} ({field.name}) has units {units!r}; give a temperature with units K or degC"
    )


def _kg_per_kg(field: xr.DataArray) -> xr.DataArray:
    units = _units(field)
    if units in G_PER_KG:
        return (field / 1000.0).astype(np.float64)
    if units in KG_PER_KG and (units or field.attrs.get("standard_name") == "specific_humidity"):
        return field.astype(np.float64)
    raise InvalidInput(f"heat_fluxes: specific_humidity ({field.name}) has units {units!r}; give kg kg-1 or g kg-1")


def _speed(field: xr.DataArray) -> xr.DataArray:
    if field.attrs.get("standard_name") in WIND_COMPONENTS:
        # COARE takes the speed: a component (negative half the time) gives a wrong flux and a negative stress
        raise InvalidInput(
            f"heat_fluxes: wind_speed ({field.name}) is a wind component ({field.attrs['standard_name']}); give the "
            "wind speed, e.g. numpy.hypot of the eastward and northward components"
        )
    units = _units(field)
    if units not in SPEED:
        raise InvalidInput(f"heat_fluxes: wind_speed ({field.name}) has units {units!r}; give m s-1")
    return field.astype(np.float64)


def _latitude(sst: xr.DataArray) -> xr.DataArray:
    """The SST's latitude (for gravity), or 45 degrees when it has none."""
    try:
        name = latitude_name(sst.coords.to_dataset())
    except InvalidInput:
        return xr.DataArray(45.0)
    return sst[name].astype(np.float64).reset_coords(drop=True) if name in sst.coords else xr.DataArray(45.0)


def regrid_like(field: xr.DataArray, target: xr.Dataset) -> xr.DataArray:
    """`field` (e.g. an SST) on `target`'s latitude/longitude grid and times, to compute fluxes with its fields.

    Cell means (NaN-aware: a coastal cell keeps its ocean part) when the target's cells are blocks of the field's,
    as 0.5 degree cells of 2 x 2 cells of 0.25 degree; linear interpolation otherwise. With a time dimension on both,
    the field's nearest time within a day is taken for each target time.
    """
    try:
        lat, lon = latitude_name(target), longitude_name(target)
        field_lat, field_lon = latitude_name(field.coords.to_dataset()), longitude_name(field.coords.to_dataset())
    except InvalidInput as error:
        raise InvalidInput(f"heat_fluxes: {error.detail}") from None
    if any(ds[axis].ndim != 1 for ds, axis in ((target, lat), (target, lon), (field, field_lat), (field, field_lon))):
        raise InvalidInput(
            "heat_fluxes: the SST and the meteorology must be regular grids (1-D latitude and longitude)"
        )
    field = field.reset_coords(drop=True).rename({field_lat: lat, field_lon: lon})
    if "time" in field.dims and "time" in target.dims:
        try:
            field = field.sel(time=target["time"].values, method="nearest", tolerance=np.timedelta64(1, "D"))
        except KeyError:
            raise InvalidInput("heat_fluxes: the SST has no time within a day of each meteorology time") from None
        field = field.assign_coords(time=target["time"].values)
    field = _longitudes_like(field, target[lon], lon)
    factor = _nesting(field, target, lat, lon)
    if factor:  # coarsen's mean skips NaN: a coastal cell keeps its ocean part
        field = field.coarsen({lat: factor, lon: factor}, boundary="trim").mean(keep_attrs=True)
    else:
        field = field.interp({lat: target[lat].values, lon: target[lon].values}, kwargs={"fill_value": None})
    return field.assign_coords({lat: target[lat], lon: target[lon]})


def _longitudes_like(field: xr.DataArray, target_lon: xr.DataArray, lon: str) -> xr.DataArray:
    """`field` with its longitudes in the target's convention (-180..180 or 0..360), in increasing order."""
    step = float(np.median(np.diff(target_lon.values))) if target_lon.size > 1 else 0.0
    start = float(target_lon.min()) - step / 2  # the western edge of the target's first cell
    wrapped = (field[lon].values - start) % 360 + start
    if np.array_equal(wrapped, field[lon].values):
        return field
    return field.assign_coords({lon: wrapped}).sortby(lon)


def _nesting(field: xr.DataArray, target: xr.Dataset, lat: str, lon: str) -> int:
    """The number of field cells per target cell along each axis when the target's cells are blocks of the
    field's (the cell means are then exact), else 0."""
    steps = [np.diff(values).mean() for values in (field[lat].values, target[lat].values) if values.size > 1]
    if len(steps) != 2 or not steps[0]:
        return 0
    factor = round(float(steps[1] / steps[0]))
    for axis in (lat, lon):
        if factor < 1 or field[axis].size // factor != target[axis].size:
            return 0
        means = field[axis].values[: target[axis].size * factor].reshape(-1, factor).mean(axis=1)
        if not np.allclose(means, target[axis].values, atol=1e-4):
            return 0
    return factor
