"""COARE 3.6 heat fluxes against direct pycoare calls on reference inputs, with unit conversions, gaps and dask."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from pycoare import coare_36
from pycoare.util import qair

from nephelae.errors import InvalidInput
from nephelae.toolbox import heat_fluxes
from nephelae.toolbox.fluxes import regrid_like

LAT = np.array([-60.0, 0.0, 45.0])
LON = np.array([-170.0, -10.0, 10.0, 170.0])
PRESSURE = 1015.0
SHAPE = (2, LAT.size, LON.size)


def reference() -> dict[str, np.ndarray]:
    """Inputs spanning calm to storm, cold to tropical waters, stable and unstable air (degC, m/s, %)."""
    rng = np.random.default_rng(3)
    ts = rng.uniform(-1.5, 30.0, SHAPE)
    return {
        "ts": ts,
        "t": ts + rng.uniform(-6.0, 3.0, SHAPE),
        "u": rng.uniform(0.5, 25.0, SHAPE),
        "rh": rng.uniform(55.0, 98.0, SHAPE),
    }


def field(values: np.ndarray, units: str, name: str) -> xr.DataArray:
    coords = {
        "time": np.array(["2020-01-01T12", "2020-01-02T12"], dtype="datetime64[ns]"),
        "lat": ("lat", LAT, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", LON, {"standard_name": "longitude", "units": "degrees_east"}),
    }
    return xr.DataArray(values, dims=("time", "lat", "lon"), coords=coords, name=name, attrs={"units": units})


def inputs(ref: dict[str, np.ndarray], *, celsius: bool = False, grams: bool = False) -> dict[str, xr.DataArray]:
    # g/kg from pycoare itself, the inverse of what heat_fluxes does (qair divides its rh argument in place: a copy)
    q = qair(ref["t"], PRESSURE, ref["rh"].copy())
    offset = 0.0 if celsius else 273.15
    unit = "degC" if celsius else "K"
    return {
        "sst": field(ref["ts"] + offset, unit, "analysed_sst"),
        "wind_speed": field(ref["u"], "m s-1", "wind_speed").assign_attrs(cell_methods="time: mean"),
        "air_temperature": field(ref["t"] + offset, unit, "air_temperature"),
        "specific_humidity": field(q if grams else q / 1000.0, "g kg-1" if grams else "kg kg-1", "specific_humidity"),
    }


def direct(ref: dict[str, np.ndarray], zu: float = 10.0, zt: float = 2.0, zq: float = 2.0) -> coare_36:
    lat = np.broadcast_to(LAT[None, :, None], SHAPE).ravel()
    return coare_36(
        ref["u"].ravel(),
        t=ref["t"].ravel(),
        rh=ref["rh"].ravel(),
        ts=ref["ts"].ravel(),
        lat=lat,
        p=np.full(lat.shape, PRESSURE),
        zu=zu,
        zt=zt,
        zq=zq,
    )


def assert_same_as_pycoare(result: xr.Dataset, expected: coare_36) -> None:
    pairs = {
        "surface_upward_latent_heat_flux": expected.fluxes.hlb,
        "surface_upward_sensible_heat_flux": expected.fluxes.hsb,
        "magnitude_of_surface_downward_stress": expected.fluxes.tau,
    }
    for name, values in pairs.items():
        np.testing.assert_allclose(result[name].values, values.reshape(SHAPE), rtol=1e-6, err_msg=name)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # pycoare's own, on waters below 1 degC
def test_fluxes_are_pycoare_coare_3_6_on_the_same_inputs() -> None:
    ref = reference()
    result = heat_fluxes(**inputs(ref))
    assert_same_as_pycoare(result, direct(ref))
    assert result["surface_upward_latent_heat_flux"].attrs["units"] == "W m-2"
    assert result["magnitude_of_surface_downward_stress"].attrs["standard_name"] == (
        "magnitude_of_surface_downward_stress"
    )
    assert result["surface_upward_sensible_heat_flux"].dims == ("time", "lat", "lon")
    assert "cell_methods" not in result["surface_upward_latent_heat_flux"].attrs  # nothing of the inputs' attributes


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_celsius_and_grams_per_kilogram_give_the_same_fluxes_and_heights_matter() -> None:
    ref = reference()
    kelvin = heat_fluxes(**inputs(ref))
    celsius = heat_fluxes(**inputs(ref, celsius=True, grams=True))
    xr.testing.assert_allclose(kelvin, celsius, rtol=1e-9)
    higher = heat_fluxes(**inputs(ref), zu=20.0, zt=10.0, zq=10.0)
    assert_same_as_pycoare(higher, direct(ref, zu=20.0, zt=10.0, zq=10.0))
    assert not np.allclose(higher["surface_upward_latent_heat_flux"], kelvin["surface_upward_latent_heat_flux"])


def test_a_warm_sea_under_cold_dry_air_loses_heat() -> None:
    ref = {name: np.full(SHAPE, value) for name, value in (("ts", 20.0), ("t", 10.0), ("u", 10.0), ("rh", 60.0))}
    result = heat_fluxes(**inputs(ref))
    assert (result["surface_upward_sensible_heat_flux"] > 50).all()
    assert (result["surface_upward_latent_heat_flux"] > 100).all()
    assert (result["magnitude_of_surface_downward_stress"] > 0.05).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_missing_inputs_give_missing_fluxes_there_only() -> None:
    ref = reference()
    fields = inputs(ref)
    fields["sst"][0, 1, 2] = np.nan  # land in the SST
    fields["wind_speed"][1, 0, 0] = np.nan  # a gap in the winds
    result = heat_fluxes(**fields)
    for variable in result.data_vars.values():
        missing = np.isnan(variable.values)
        assert missing[0, 1, 2] and missing[1, 0, 0] and missing.sum() == 2
    expected = direct(ref)  # pycoare is pointwise: the other pixels are as without the gaps
    for name, values in (("surface_upward_latent_heat_flux", expected.fluxes.hlb),):
        complete = ~np.isnan(result[name].values)
        np.testing.assert_allclose(result[name].values[complete], values.reshape(SHAPE)[complete], rtol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_dask_inputs_stay_lazy_and_compute_the_same() -> None:
    ref = reference()
    lazy = {name: value.chunk({"time": 1, "lat": 2}) for name, value in inputs(ref).items()}
    result = heat_fluxes(**lazy)
    assert all(variable.chunks is not None for variable in result.data_vars.values())
    assert_same_as_pycoare(result.compute(), direct(ref))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"sst": ("units", "degF")},
            "sst \\(analysed_sst\\) has units 'degF'; give a temperature with units K or degC",
        ),
        ({"air_temperature": ("units", "")}, "air_temperature .* give a temperature"),
        ({"specific_humidity": ("units", "%")}, "give kg kg-1 or g kg-1"),
        ({"wind_speed": ("units", "knots")}, "give m s-1"),
        (
            {"wind_speed": ("standard_name", "eastward_wind")},
            "is a wind component \\(eastward_wind\\); give the wind speed",
        ),
    ],
)
def test_unknown_units_are_refused(change: dict[str, tuple[str, str]], message: str) -> None:
    fields = inputs(reference())
    for name, (key, value) in change.items():
        fields[name] = fields[name].assign_attrs({key: value})
    with pytest.raises(InvalidInput, match=message):
        heat_fluxes(**fields)


@pytest.mark.parametrize("height", [0, -2, 500, "10", True])
def test_impossible_heights_are_refused(height: object) -> None:
    with pytest.raises(InvalidInput, match="zu must be a height in metres"):
        heat_fluxes(**inputs(reference()), zu=height)  # type: ignore[arg-type]


def test_fields_on_different_grids_are_refused() -> None:
    fields = inputs(reference())
    fields["wind_speed"] = fields["wind_speed"].assign_coords(lon=LON + 0.5)
    with pytest.raises(InvalidInput, match="not on one grid"):
        heat_fluxes(**fields)


def global_field(step: float, first_lon: float, values: np.ndarray | None = None) -> xr.DataArray:
    lat = np.arange(-90 + step / 2, 90, step)
    lon = np.arange(first_lon + step / 2, first_lon + 360, step)
    if values is None:
        values = np.random.default_rng(1).normal(290, 5, (lat.size, lon.size))
    coords = {
        "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
    }
    return xr.DataArray(values, dims=("lat", "lon"), coords=coords, attrs={"units": "K"})


def test_regrid_like_averages_nested_cells_across_longitude_conventions() -> None:
    fine = global_field(1.0, 0.0)  # 0..360, like OSTIA
    fine[3, 5] = np.nan
    target = global_field(2.0, -180.0).to_dataset(name="wind_speed")  # -180..180, like the met
    result = regrid_like(fine, target)
    assert result["lon"].values.tolist() == target["lon"].values.tolist()
    rolled = np.roll(fine.values, 180, axis=1)  # 0..360 to -180..180: 180 columns of 1 degree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmean(rolled.reshape(90, 2, 180, 2), axis=(1, 3))
    np.testing.assert_allclose(result.values, expected, rtol=1e-12)
    assert np.isfinite(result.values).all()  # the cell holding the gap keeps its three other values


def test_regrid_like_interpolates_and_matches_times() -> None:
    field = global_field(1.0, -180.0).expand_dims(time=np.array(["2020-01-01T12"], dtype="datetime64[ns]"))
    target = global_field(3.0, -180.0).to_dataset(name="wind_speed")
    target = target.expand_dims(time=np.array(["2020-01-01T18"], dtype="datetime64[ns]"))
    target = target.assign_coords(lat=target["lat"] + 0.25)
    result = regrid_like(field, target)
    assert result.sizes == {"time": 1, "lat": 60, "lon": 120} and result["time"].values[0] == target["time"].values[0]
    expected = field.isel(time=0).interp(lat=target["lat"].values[10], lon=target["lon"].values[20])
    np.testing.assert_allclose(result.values[0, 10, 20], float(expected), rtol=1e-12)
    later = target.assign_coords(time=target["time"] + np.timedelta64(3, "D"))
    with pytest.raises(InvalidInput, match="no time within a day"):
        regrid_like(field, later)


def test_regrid_like_needs_regular_grids() -> None:
    swath = xr.DataArray(
        np.zeros((2, 2)),
        dims=("nj", "ni"),
        coords={
            "lat": (("nj", "ni"), np.zeros((2, 2)), {"units": "degrees_north"}),
            "lon": (("nj", "ni"), np.zeros((2, 2)), {"units": "degrees_east"}),
        },
    )
    with pytest.raises(InvalidInput, match="must be regular grids"):
        regrid_like(swath, global_field(2.0, -180.0).to_dataset(name="wind_speed"))
