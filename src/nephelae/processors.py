"""Built-in campaign processors, named in a spec as `nephelae.processors:NAME`.

Each is a `process(inputs, parameters) -> xarray.Dataset`: `inputs` maps the spec's input aliases (the primary input
first) to the task's granules opened lazily as one dataset each (empty when an alias matched no granule), and
`parameters` is the spec's `parameters` mapping. A processor checks its parameters and raises `InvalidInput` naming
the faulty one (a retry cannot fix a bad parameter), and returns a lazy dataset: the campaign runner computes and
writes it, adding the CF and provenance attributes. The computing itself is xarray's and `nephelae.toolbox`'s.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from nephelae.errors import InvalidInput
from nephelae.toolbox import subset as toolbox_subset

__all__ = ["monthly_mean", "sst_anomaly", "subset", "time_mean"]

Inputs = Mapping[str, xr.Dataset]
Parameters = Mapping[str, Any]

FLAG_ATTRIBUTES = ("flag_values", "flag_masks", "flag_meanings")
PACKED_RANGE_ATTRIBUTES = ("valid_min", "valid_max", "valid_range", "actual_range", "_Unsigned")
KEPT_GLOBAL_ATTRIBUTES = (
    "institution",
    "source",
    "references",
    "license",
    "project",
    "platform",
    "sensor",
    "keywords",
    "keywords_vocabulary",
    "standard_name_vocabulary",
    "history",
)
KELVIN_UNITS = ("K", "kelvin", "Kelvin", "degK", "degree_Kelvin", "degrees_Kelvin")
CELSIUS_UNITS = ("degC", "celsius", "Celsius", "degree_Celsius", "degrees_Celsius", "deg_C")
ZERO_CELSIUS = 273.15


def time_mean(inputs: Inputs, parameters: Parameters) -> xr.Dataset:
    """The mean over time of the primary input's variables, ignoring missing values (NaN).

    With `group_by: month` (or `day`) a task holds the granules of one month (day): the result is that period's mean,
    one time step at the middle of the inputs' times, with `time_bnds` spanning them. Variables keep their attributes
    and units, gain `cell_methods: time: mean`, and lose the packed-value ranges (`valid_min`...) that no longer apply.

    Parameters:
    - `variables`: the names to average (default: every numeric variable with a time dimension, flags excepted);
    - `input`: the alias of the input to average (default: the first, primary one).
    """
    return _time_mean("time_mean", inputs, parameters)


def monthly_mean(inputs: Inputs, parameters: Parameters) -> xr.Dataset:
    """`time_mean` under the name a monthly campaign reads best (`group_by: month`); the same parameters."""
    return _time_mean("monthly_mean", inputs, parameters)


def _time_mean(name: str, inputs: Inputs, parameters: Parameters) -> xr.Dataset:
    _check_parameters(name, parameters, {"variables", "input"})
    source = _input(name, inputs, parameters)
    names = _variables(name, source, parameters.get("variables"))
    means = source[names].mean("time", skipna=True, keep_attrs=True)
    for variable in means.data_vars.values():
        variable.attrs = _computed_attrs(variable.attrs, "time: mean")
    result = _with_period(means, source)
    result.attrs = _derived_attrs(source, "Mean over time")
    return result


def sst_anomaly(inputs: Inputs, parameters: Parameters) -> xr.Dataset:
    """The sea surface temperature anomaly, in kelvin, at every time step of the primary input.

    The anomaly is the SST minus a reference: by default the task's own mean over time, per pixel and ignoring
    missing values (with `group_by: month`, the departure from that month's mean), or a constant temperature.
    The result has one variable, `sst_anomaly` (units `K`), on the SST's grid and times.

    Parameters:
    - `reference`: `"group_mean"` (default) or a number, a constant reference temperature in kelvin (e.g. 288.15);
    - `variable`: the SST variable (default `analysed_sst`; `sea_surface_temperature` for L2P granules);
    - `input`: the alias of the input holding it (default: the first, primary one).
    """
    _check_parameters("sst_anomaly", parameters, {"reference", "variable", "input"})
    source = _input("sst_anomaly", inputs, parameters)
    variable = parameters.get("variable", "analysed_sst")
    if not isinstance(variable, str) or variable not in source.data_vars:
        raise InvalidInput(f"sst_anomaly: parameter variable must name one of {_names(source.data_vars)}")
    sst = _in_kelvin(source[variable])
    reference, described = _reference(parameters.get("reference", "group_mean"), sst)
    anomaly = (sst - reference).astype(sst.dtype)
    anomaly.attrs = {
        "long_name": f"{sst.attrs.get('long_name', variable)} anomaly relative to {described}",
        "units": "K",
        "reference": described,
        "coverage_content_type": "physicalMeasurement",
    }
    result = xr.Dataset({"sst_anomaly": anomaly})
    result.attrs = _derived_attrs(source, "SST anomaly")
    return result


def subset(inputs: Inputs, parameters: Parameters) -> xr.Dataset:
    """The part of the primary input inside a box, with only the chosen variables (`nephelae.toolbox.subset`).

    Grids are cut to the rows and columns inside the box; swaths are cropped and the pixels outside it masked.

    Parameters (at least one of `bbox` and `variables`):
    - `bbox`: `[west, south, east, north]` in degrees, or `"W,S,E,N"`; west > east crosses the antimeridian;
    - `variables`: the names to keep (default: all);
    - `input`: the alias of the input to cut (default: the first, primary one).
    """
    _check_parameters("subset", parameters, {"bbox", "variables", "input"})
    if "bbox" not in parameters and "variables" not in parameters:
        raise InvalidInput("subset: give bbox [west, south, east, north], variables [names], or both")
    source = _input("subset", inputs, parameters)
    bbox = _bbox(parameters["bbox"]) if "bbox" in parameters else None
    variables = _names_parameter("subset", parameters.get("variables")) if "variables" in parameters else None
    result = toolbox_subset(source, bbox=bbox, variables=variables)
    if any(size == 0 for size in result.sizes.values()):
        raise InvalidInput(f"subset: no data of this task lies inside bbox {list(bbox or ())}; check its order W,S,E,N")
    result.attrs = _derived_attrs(source, "Subset")
    return result


def _check_parameters(name: str, parameters: Parameters, known: Collection[str]) -> None:
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise InvalidInput(f"{name}: unknown parameter {', '.join(unknown)}; {name} takes {', '.join(sorted(known))}")


def _input(name: str, inputs: Inputs, parameters: Parameters) -> xr.Dataset:
    """The dataset the processor works on: the `input` parameter's alias, or the first."""
    alias = parameters.get("input", next(iter(inputs), None))
    if not isinstance(alias, str) or alias not in inputs:
        raise InvalidInput(f"{name}: parameter input must name one of the inputs {_names(inputs)}")
    dataset = inputs[alias]
    if not dataset.data_vars:
        raise InvalidInput(f"{name}: input {alias!r} has no granule (or no variable) in this task")
    return dataset


def _variables(name: str, source: xr.Dataset, requested: object) -> list[str]:
    """The variables to average: those requested (checked), or every numeric, non-flag one with a time dimension."""
    if "time" not in source.dims:
        raise InvalidInput(f"{name}: the input has no time dimension to average over")
    if requested is None:
        found = [str(key) for key, variable in source.data_vars.items() if _averageable(variable)]
        if not found:
            raise InvalidInput(f"{name}: the input has no numeric variable with a time dimension to average")
        return found
    names = _names_parameter(name, requested)
    for variable in names:
        if variable not in source.data_vars:
            raise InvalidInput(f"{name}: no variable {variable!r}; the input has {_names(source.data_vars)}")
        if not _averageable(source[variable], flags_allowed=True):
            raise InvalidInput(f"{name}: variable {variable!r} is not numeric with a time dimension")
    return names


def _averageable(variable: xr.DataArray, *, flags_allowed: bool = False) -> bool:
    numeric = variable.dtype.kind in "fiu"
    flags = any(key in variable.attrs for key in FLAG_ATTRIBUTES)
    return numeric and "time" in variable.dims and (flags_allowed or not flags)


def _names_parameter(name: str, value: object) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{name}: parameter variables must be a non-empty list of variable names")
    return list(dict.fromkeys(value))


def _computed_attrs(attrs: Mapping[str, Any], cell_method: str) -> dict[str, Any]:
    """A variable's attributes after a computation: packed ranges dropped, the cell method appended."""
    kept = {key: value for key, value in attrs.items() if key not in PACKED_RANGE_ATTRIBUTES}
    kept["cell_methods"] = f"{kept['cell_methods']} {cell_method}" if kept.get("cell_methods") else cell_method
    return kept


def _with_period(means: xr.Dataset, source: xr.Dataset) -> xr.Dataset:
    """`means` on one time step at the middle of the source's times, with bounds spanning them (CF cell bounds)."""
    times = source["time"].values
    if times.dtype.kind != "M":
        return means
    first, last = times.min(), times.max()
    if "time_bnds" in source and source["time_bnds"].dtype.kind == "M":
        first, last = source["time_bnds"].values.min(), source["time_bnds"].values.max()
    middle = first + (last - first) / 2
    attrs = {key: value for key, value in source["time"].attrs.items() if key in ("long_name", "standard_name", "axis")}
    result = means.expand_dims(time=[middle])
    result["time"].attrs = {**attrs, "bounds": "time_bnds"}
    units = {key: value for key, value in source["time"].encoding.items() if key in ("units", "calendar")}
    result["time"].encoding = units  # the source's time units, for the time and its bounds alike
    result["time_bnds"] = (("time", "nv"), np.array([[first, last]], dtype=times.dtype))
    return result


def _derived_attrs(source: xr.Dataset, operation: str) -> dict[str, Any]:
    """Global attributes of a derived dataset: what describes the source (not its identity), and a title."""
    title = source.attrs.get("title")
    attrs = {key: source.attrs[key] for key in KEPT_GLOBAL_ATTRIBUTES if key in source.attrs}
    attrs["title"] = f"{operation} of {title}" if title else operation
    return attrs


def _in_kelvin(sst: xr.DataArray) -> xr.DataArray:
    units = str(sst.attrs.get("units", ""))
    if units in KELVIN_UNITS:
        return sst
    if units in CELSIUS_UNITS:
        return (sst + ZERO_CELSIUS).assign_attrs(sst.attrs | {"units": "K"})
    raise InvalidInput(f"sst_anomaly: variable {sst.name!r} has units {units!r}, not a temperature in K or degC")


def _reference(value: object, sst: xr.DataArray) -> tuple[xr.DataArray | float, str]:
    """The reference to subtract, and how the output describes it."""
    if value == "group_mean":
        if "time" not in sst.dims:
            raise InvalidInput("sst_anomaly: reference group_mean needs a time dimension; give a constant instead")
        return sst.mean("time", skipna=True), "the mean over time of this task's inputs"
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 < value < 400:
        return float(value), f"a constant {float(value):g} K"
    raise InvalidInput(
        f"sst_anomaly: parameter reference must be 'group_mean' or a temperature in kelvin, not {value!r}"
    )


def _bbox(value: object) -> tuple[float, float, float, float]:
    """[W, S, E, N] or 'W,S,E,N', checked: numbers, latitudes within [-90, 90] with S <= N, longitudes in degrees."""
    parts: Sequence[object] = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else ()
    numbers = [number for number in map(_number, parts) if number is not None]
    if len(numbers) != 4 or len(parts) != 4:
        raise InvalidInput(f"subset: bbox must be [west, south, east, north] in degrees, not {value!r}")
    west, south, east, north = numbers
    if not -90 <= south <= north <= 90 or not all(-180 <= lon <= 360 for lon in (west, east)):
        raise InvalidInput(f"subset: bbox {numbers} needs -90 <= south <= north <= 90 and longitudes in [-180, 360]")
    return west, south, east, north


def _number(value: object) -> float | None:
    """A finite number from a JSON number or its text; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _names(names: Collection[Any]) -> str:
    return ", ".join(map(str, names)) or "(none)"
