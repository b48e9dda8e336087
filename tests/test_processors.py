"""Built-in processors against independent numpy computations on generated grids, and their parameter checks."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import xarray as xr

from nephelae import processors
from nephelae.errors import InvalidInput

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
