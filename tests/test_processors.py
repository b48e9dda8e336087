"""Built-in processors against independent numpy computations on generated grids, and their parameter checks."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from nephelae import processors
from nephelae.campaigns.outputs import open_granules, write_netcdf
from nephelae.demo.archive import build_demo_archive
from nephelae.errors import InvalidInput
from nephelae.toolbox import heat_fluxes
from tests.support.compliance import assert_cf_compliant

TIMES = np.array(["2020-01-01T12", "2020-01-02T12", "2020-01-03T12", "2020-01-04T12"], dtype="datetime64[ns]")
LAT = np.arange(-88.0, 90.0, 4.0)
LON = np.arange(-178.0, 180.0, 4.0)
SST_ATTRS = {
    "long_name": "analysed sea surface temperature",
    "standard_name": "sea_surface_foundation_temperature",
    "units": "kelvin",
    "valid_min": np.int16(-300),
    "valid_max": np.int16(4500),
}


def grid(*, chunked: bool = False, units: str = "kelvin") -> xr.Dataset:
    """Four daily SST fields with gaps (a pixel missing at every time too), an error field and a flag mask."""
    rng = np.random.default_rng(7)
    shape = (TIMES.size, LAT.size, LON.size)
    sst = 271.0 + 30.0 * rng.random(shape)
    sst[rng.random(shape) < 0.2] = np.nan
    sst[:, 3, 5] = np.nan
    if units == "degC":
        sst -= 273.15
    error = rng.random(shape)
    mask = rng.integers(1, 3, shape).astype(np.int8)
    coords = {
        "time": ("time", TIMES, {"standard_name": "time", "axis": "T"}),
        "lat": ("lat", LAT, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", LON, {"standard_name": "longitude", "units": "degrees_east"}),
    }
    dims = ("time", "lat", "lon")
    ds = xr.Dataset(
        {
            "analysed_sst": (dims, sst, SST_ATTRS | {"units": units}),
            "analysis_error": (dims, error, {"units": "kelvin", "long_name": "error"}),
            "mask": (dims, mask, {"flag_masks": np.array([1, 2], np.int8), "flag_meanings": "water land"}),
        },
        coords=coords,
        attrs={"title": "Generated SST", "institution": "tests", "uuid": "not-for-derived-data"},
    )
    return ds.chunk({"time": 1}) if chunked else ds


def nanmean(values: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-missing pixel: NaN, as wanted
        return np.nanmean(values, axis=axis)


@pytest.mark.parametrize("name", ["time_mean", "monthly_mean"])
@pytest.mark.parametrize("chunked", [False, True], ids=["numpy", "dask"])
def test_time_mean_is_the_nan_aware_mean_of_every_numeric_variable(name: str, chunked: bool) -> None:
    source = grid(chunked=chunked)
    result = getattr(processors, name)({"sst": source}, {})
    assert sorted(result.data_vars) == ["analysed_sst", "analysis_error", "time_bnds"]  # flags are not averaged
    expected = nanmean(grid()["analysed_sst"].values)
    np.testing.assert_allclose(result["analysed_sst"].values[0], expected, rtol=1e-12)
    assert np.isnan(result["analysed_sst"].values[0, 3, 5])
    np.testing.assert_allclose(result["analysis_error"].values[0], grid()["analysis_error"].values.mean(axis=0))
    attrs = result["analysed_sst"].attrs
    assert attrs["units"] == "kelvin" and attrs["standard_name"] == SST_ATTRS["standard_name"]
    assert attrs["cell_methods"] == "time: mean" and "valid_min" not in attrs
    assert result["time"].values.tolist() == [np.datetime64("2020-01-03T00", "ns").astype(int)]
    assert result["time_bnds"].values.tolist() == [[TIMES[0].astype(int), TIMES[-1].astype(int)]]
    assert result["time"].attrs["bounds"] == "time_bnds"
    assert result.attrs["title"] == "Mean over time of Generated SST" and "uuid" not in result.attrs
    assert (result["analysed_sst"].chunks is not None) == chunked  # lazy in, lazy out


def test_time_mean_output_is_cf_compliant(tmp_path: Path) -> None:
    source = grid()
    source["time"].encoding = {"units": "hours since 2020-01-01", "dtype": "int32"}
    result = processors.monthly_mean({"sst": source}, {})
    path = tmp_path / "mean.nc"
    write_netcdf(result, path, {"nephelae_campaign": "1"})
    assert_cf_compliant(path)
    with xr.open_dataset(path) as written:
        assert written["time"].values[0] == np.datetime64("2020-01-03T00", "ns")


def test_time_mean_of_chosen_variables_and_of_another_input() -> None:
    second = grid() + 1.0
    result = processors.time_mean({"sst": grid(), "other": second}, {"variables": ["analysis_error"], "input": "other"})
    assert sorted(result.data_vars) == ["analysis_error", "time_bnds"]
    np.testing.assert_allclose(result["analysis_error"].values[0], second["analysis_error"].values.mean(axis=0))


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"variable": ["analysed_sst"]}, "unknown parameter variable; time_mean takes input, variables"),
        ({"variables": "analysed_sst"}, "variables must be a non-empty list"),
        ({"variables": ["sst"]}, "no variable 'sst'; the input has analysed_sst, analysis_error, mask"),
        ({"input": "wind"}, "input must name one of the inputs sst"),
    ],
)
def test_time_mean_refuses_bad_parameters(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        processors.time_mean({"sst": grid()}, parameters)


def test_time_mean_needs_time_and_data() -> None:
    with pytest.raises(InvalidInput, match="no time dimension"):
        processors.time_mean({"sst": grid().isel(time=0)}, {})
    with pytest.raises(InvalidInput, match="has no granule"):
        processors.time_mean({"sst": xr.Dataset()}, {})


@pytest.mark.parametrize("chunked", [False, True], ids=["numpy", "dask"])
def test_sst_anomaly_from_the_group_mean(chunked: bool) -> None:
    result = processors.sst_anomaly({"sst": grid(chunked=chunked)}, {})
    sst = grid()["analysed_sst"].values
    assert list(result.data_vars) == ["sst_anomaly"]
    np.testing.assert_allclose(result["sst_anomaly"].values, sst - nanmean(sst), rtol=1e-12)
    attrs = result["sst_anomaly"].attrs
    assert attrs["units"] == "K"
    assert attrs["long_name"] == "analysed sea surface temperature anomaly relative to the mean over time of this " + (
        "task's inputs"
    )
    assert result["sst_anomaly"].dims == ("time", "lat", "lon")


def test_sst_anomaly_from_a_constant_reference_and_celsius_input() -> None:
    result = processors.sst_anomaly({"sst": grid(units="degC")}, {"reference": 290})
    expected = grid()["analysed_sst"].values - 290.0
    np.testing.assert_allclose(result["sst_anomaly"].values, expected, rtol=1e-12)
    assert result["sst_anomaly"].attrs["reference"] == "a constant 290 K"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"reference": "climatology"}, "reference must be 'group_mean' or a temperature in kelvin"),
        ({"reference": True}, "reference must be"),
        ({"reference": -4}, "reference must be"),
        ({"variable": "sea_surface_temperature"}, "variable must name one of analysed_sst, analysis_error, mask"),
        ({"variable": "mask"}, "units '', not a temperature"),
        ({"bbox": [0, 0, 1, 1]}, "unknown parameter bbox"),
    ],
)
def test_sst_anomaly_refuses_bad_parameters(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        processors.sst_anomaly({"sst": grid()}, parameters)


@pytest.mark.parametrize("bbox", [[-80, 0, 0, 60], "-80,0,0,60"])
def test_subset_cuts_the_box_and_keeps_the_variables(bbox: object) -> None:
    source = grid()
    result = processors.subset({"sst": source}, {"bbox": bbox, "variables": ["analysed_sst"]})
    rows = (LAT >= 0) & (LAT <= 60)
    columns = (LON >= -80) & (LON <= 0)
    expected = source["analysed_sst"].values[:, rows][:, :, columns]
    assert list(result.data_vars) == ["analysed_sst"]
    np.testing.assert_array_equal(result["analysed_sst"].values, expected)
    assert result["lat"].values.tolist() == LAT[rows].tolist()
    assert result["analysed_sst"].attrs["units"] == "kelvin"


def test_subset_across_the_antimeridian() -> None:
    result = processors.subset({"sst": grid()}, {"bbox": [170, -10, -170, 10]})
    assert result["lon"].values.tolist() == [170.0, 174.0, 178.0, -178.0, -174.0, -170.0]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "give bbox"),
        ({"bbox": [0, 0, 1]}, "bbox must be \\[west, south, east, north\\]"),
        ({"bbox": [0, "a", 1, 2]}, "bbox must be"),
        ({"bbox": [0, 10, 1, -10]}, "south <= north"),
        ({"bbox": [0, 0, 1, float("nan")]}, "bbox must be"),
        ({"bbox": [1.0, 1.0, 1.5, 1.5]}, "no data of this task lies inside bbox"),
        ({"variables": ["nope"]}, "no variable nope"),
        ({"box": [0, 0, 1, 1]}, "unknown parameter box"),
    ],
)
def test_subset_refuses_bad_parameters(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        processors.subset({"sst": grid()}, parameters)


# bin_l2p and heat_flux, on generated swaths and grids; their outputs written as the campaign runner writes them.


def swaths() -> xr.Dataset:
    """Two 60 x 40 L2P-like swaths along time, one across the antimeridian, with quality levels and SSES biases."""
    rng = np.random.default_rng(11)
    rows, columns = np.meshgrid(np.arange(60), np.arange(40), indexing="ij")
    lat = np.stack([-30 + 0.5 * rows + 0.01 * columns, 20 + 0.5 * rows]).astype(np.float32)
    lon = np.stack([170 + 0.5 * columns, -60 + 0.5 * columns + 0.05 * rows]).astype(np.float32)
    lon = np.where(lon >= 180, lon - 360, lon)
    shape = (2, 60, 40)
    return xr.Dataset(
        {
            "sea_surface_temperature": (
                ("time", "nj", "ni"),
                285 + 10 * rng.random(shape),
                {"units": "kelvin", "standard_name": "sea_surface_skin_temperature"},
            ),
            "quality_level": (("time", "nj", "ni"), rng.integers(0, 6, shape).astype(np.float32)),
            "sses_bias": (("time", "nj", "ni"), -np.abs(rng.normal(0.1, 0.05, shape))),
        },
        coords={
            "time": ("time", TIMES[:2], {"standard_name": "time"}),
            "lat": (("time", "nj", "ni"), lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": (("time", "nj", "ni"), lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"title": "Generated L2P", "institution": "tests"},
    )


def written(result: xr.Dataset, tmp_path: Path) -> Path:
    path = tmp_path / "output.nc"
    write_netcdf(result, path, {"nephelae_campaign": "1"})
    return path


def test_bin_l2p_counts_the_good_pixels_per_cell_and_is_cf(tmp_path: Path) -> None:
    source = swaths()
    result = processors.bin_l2p({"l2p": source.chunk({"time": 1})}, {"resolution": 1.0, "min_quality": 5})
    assert result["sea_surface_temperature"].chunks is not None  # lazy: the runner computes it
    good = source["sea_surface_temperature"].where(source["quality_level"] >= 5).values
    lon = np.mod(source["lon"].values + 180, 360) - 180
    keep = np.isfinite(good)
    counts = np.histogram2d(
        source["lat"].values[keep], lon[keep], bins=[np.arange(-90, 91, 1.0), np.arange(-180, 181, 1.0)]
    )[0]
    np.testing.assert_array_equal(result["sea_surface_temperature_count"].values[0], counts)
    assert result.attrs["title"].startswith("L3 binning") and result.attrs["processing_level"] == "L3"
    assert_cf_compliant(written(result, tmp_path))


def test_bin_l2p_subtracts_the_bias_inside_a_box_across_the_antimeridian() -> None:
    source = swaths()
    plain = processors.bin_l2p({"l2p": source}, {"resolution": 0.5, "bbox": [169, -31, -160, 0], "min_quality": 0})
    corrected = processors.bin_l2p(
        {"l2p": source}, {"resolution": 0.5, "bbox": "169,-31,-160,0", "min_quality": 0, "sses_bias": True}
    )
    assert plain["lon"].values[0] == 169.25 and plain["lon"].values[-1] == 199.75
    shift = (corrected["sea_surface_temperature"] - plain["sea_surface_temperature"]).values
    assert np.nanmin(shift) > 0 and int(plain["sea_surface_temperature_count"].sum()) == 60 * 40


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"resolution": 0.7}, "bin_l2p: resolution 0.7 does not divide 180"),
        ({"min_quality": "good"}, "min_quality must be a quality level"),
        ({"sses_bias": "yes"}, "sses_bias must be true or false"),
        ({"bbox": [0, 0, 1]}, "bin_l2p: bbox must be"),
        ({"variable": "sst"}, "no variable 'sst'"),
        ({"resolution": 1, "sst": 1}, "unknown parameter sst"),
    ],
)
def test_bin_l2p_refuses_bad_parameters(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        processors.bin_l2p({"l2p": swaths()}, parameters)


def met_and_sst() -> dict[str, xr.Dataset]:
    """A 1-degree SST (with a land cell) and a 2-degree met grid on one day: a met cell holds 2 x 2 SST cells."""
    rng = np.random.default_rng(5)
    sst_lat, sst_lon = np.arange(-9.5, 10, 1.0), np.arange(100.5, 120, 1.0)
    met_lat, met_lon = np.arange(-9.0, 10, 2.0), np.arange(101.0, 120, 2.0)
    sst = 290 + 8 * rng.random((1, sst_lat.size, sst_lon.size))
    sst[0, 0, 0] = np.nan
    coords = {"time": ("time", TIMES[:1], {"standard_name": "time"})}
    axes = (
        {"standard_name": "latitude", "units": "degrees_north"},
        {"standard_name": "longitude", "units": "degrees_east"},
    )
    met_shape = (1, met_lat.size, met_lon.size)
    return {
        "sst": xr.Dataset(
            {"analysed_sst": (("time", "lat", "lon"), sst, {"units": "kelvin"})},
            coords=coords | {"lat": ("lat", sst_lat, axes[0]), "lon": ("lon", sst_lon, axes[1])},
            attrs={"title": "Generated SST"},
        ),
        "met": xr.Dataset(
            {
                "wind_speed": (("time", "lat", "lon"), 2 + 10 * rng.random(met_shape), {"units": "m s-1"}),
                "air_temperature": (("time", "lat", "lon"), 285 + 8 * rng.random(met_shape), {"units": "K"}),
                "specific_humidity": (("time", "lat", "lon"), 8 + 8 * rng.random(met_shape), {"units": "g kg-1"}),
            },
            coords=coords | {"lat": ("lat", met_lat, axes[0]), "lon": ("lon", met_lon, axes[1])},
            attrs={"title": "Generated met"},
        ),
    }


def test_heat_flux_puts_the_sst_on_the_met_grid_and_calls_coare(tmp_path: Path) -> None:
    inputs = met_and_sst()
    result = processors.heat_flux(inputs, {})
    sst = inputs["sst"]["analysed_sst"].values[0]
    blocks = sst.reshape(10, 2, 10, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected_sst = np.nanmean(blocks, axis=(1, 3))  # the land cell left out of its met cell's mean
    direct = heat_fluxes(
        xr.DataArray(
            expected_sst[None], dims=("time", "lat", "lon"), coords=inputs["met"].coords, attrs={"units": "K"}
        ),
        inputs["met"]["wind_speed"],
        inputs["met"]["air_temperature"],
        inputs["met"]["specific_humidity"],
    )
    for name in direct.data_vars:
        np.testing.assert_allclose(result[name].values, direct[name].values, rtol=1e-12)
    assert np.isfinite(result["surface_upward_latent_heat_flux"].values).all()
    assert result["lat"].values.tolist() == inputs["met"]["lat"].values.tolist()
    assert_cf_compliant(written(result, tmp_path))


def test_heat_flux_interpolates_grids_that_do_not_nest() -> None:
    inputs = met_and_sst()
    inputs["met"] = inputs["met"].assign_coords(lat=inputs["met"]["lat"] + 0.3)
    result = processors.heat_flux(inputs, {"zu": 10, "zt": 2, "zq": 2})
    assert result.sizes == {"time": 1, "lat": 10, "lon": 10}
    assert np.isfinite(result["surface_upward_sensible_heat_flux"].values[0, 1:, 1:]).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parameters": {"sst_variable": "sst"}}, "sst_variable must name one of analysed_sst"),
        ({"parameters": {"zu": -1}}, "heat_flux: zu must be a height"),
        ({"parameters": {"height": 10}}, "unknown parameter height"),
        ({"drop": "met"}, "needs two inputs named sst and met"),
        ({"units": "degF"}, "heat_flux: sst \\(analysed_sst\\) has units 'degF'"),
    ],
)
def test_heat_flux_refuses_bad_parameters(change: dict[str, Any], message: str) -> None:
    inputs = met_and_sst()
    if "drop" in change:
        del inputs[change["drop"]]
    if "units" in change:
        inputs["sst"]["analysed_sst"].attrs["units"] = change["units"]
    with pytest.raises(InvalidInput, match=message):
        processors.heat_flux(inputs, change.get("parameters", {}))


def test_bin_l2p_on_a_day_of_demo_swaths_opened_as_the_runner_opens_them(tmp_path: Path) -> None:
    build_demo_archive(tmp_path / "archive", start=dt.date(2020, 1, 2), days=1)
    paths = sorted(str(path) for path in (tmp_path / "archive" / "demo-l2p-sst").rglob("*.nc"))
    day = open_granules("l2p", paths)  # five swaths along time, one over a pole, one across the antimeridian
    try:
        result = processors.bin_l2p({"l2p": day}, {"resolution": 1.0, "sses_bias": True})
        path = written(result, tmp_path)
        quality = day["quality_level"].values
        kept = np.isfinite(day["sea_surface_temperature"].values) & (quality >= 4)
    finally:
        day.close()
    with xr.open_dataset(path) as output:
        assert int(output["sea_surface_temperature_count"].sum()) == int(kept.sum()) > 0
        assert output["sea_surface_temperature"].attrs["cell_methods"] == "area: mean"
    assert_cf_compliant(path)


def with_ice(inputs: dict[str, xr.Dataset]) -> dict[str, xr.Dataset]:
    """Ice over the SST block of met cell (9, 9) (the four SST cells), and on one SST cell of met cell (9, 0)."""
    ice = np.zeros(inputs["sst"]["analysed_sst"].shape)
    ice[0, 18:, 18:] = 0.9
    ice[0, 19, 0] = 0.5
    ice_attrs = {"units": "1", "standard_name": "sea_ice_area_fraction"}
    inputs["sst"]["sea_ice_fraction"] = (("time", "lat", "lon"), ice, ice_attrs)
    return inputs


def test_heat_flux_leaves_ice_covered_sst_out() -> None:
    inputs = with_ice(met_and_sst())
    result = processors.heat_flux(inputs, {})["surface_upward_latent_heat_flux"].values[0]
    assert np.isnan(result[9, 9]) and np.isfinite(result).sum() == 99
    without_that_cell = met_and_sst()
    without_that_cell["sst"]["analysed_sst"][0, 19, 0] = np.nan
    expected = processors.heat_flux(without_that_cell, {})["surface_upward_latent_heat_flux"].values[0]
    assert result[9, 0] == expected[9, 0]  # the mean of the three open-water cells
    everything = processors.heat_flux(inputs, {"max_sea_ice_fraction": None})
    assert np.isfinite(everything["surface_upward_latent_heat_flux"].values).all()
    lenient = processors.heat_flux(inputs, {"max_sea_ice_fraction": 0.95, "sea_ice_variable": "sea_ice_fraction"})
    assert np.isfinite(lenient["surface_upward_latent_heat_flux"].values).all()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"max_sea_ice_fraction": 2}, "max_sea_ice_fraction must be a fraction 0 to 1, or null"),
        ({"max_sea_ice_fraction": "none"}, "max_sea_ice_fraction must be"),
        ({"sea_ice_variable": "ice"}, "sea_ice_variable must name one of analysed_sst, sea_ice_fraction"),
    ],
)
def test_heat_flux_refuses_bad_ice_parameters(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        processors.heat_flux(with_ice(met_and_sst()), parameters)
