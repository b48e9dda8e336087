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
from nephelae.toolbox.binning import TIME_ENCODING
from nephelae.toolbox.binning import bin_l2p as toolbox_bin_l2p
from nephelae.toolbox.fluxes import heat_fluxes, regrid_like

__all__ = ["bin_l2p", "heat_flux", "monthly_mean", "sst_anomaly", "subset", "time_mean"]

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
    bbox = _bbox("subset", parameters["bbox"]) if "bbox" in parameters else None
    variables = _names_parameter("subset", parameters.get("variables")) if "variables" in parameters else None
    result = toolbox_subset(source, bbox=bbox, variables=variables)
    if any(size == 0 for size in result.sizes.values()):
        raise InvalidInput(f"subset: no data of this task lies inside bbox {list(bbox or ())}; check its order W,S,E,N")
    result.attrs = _derived_attrs(source, "Subset")
    return result


def bin_l2p(inputs: Inputs, parameters: Parameters) -> xr.Dataset:
    """L2P swath pixels binned onto a regular L3 grid: per cell the mean, the count and the standard deviation.

    With `group_by: day` a task bins the day's swaths together (`nephelae.toolbox.bin_l2p`); swaths crossing the
    antimeridian or a pole need nothing special. The result holds `<variable>`, `<variable>_count` and
    `<variable>_stddev` on `lat`/`lon` cell centres (with bounds), one time step at the middle of the swaths' times.

    Parameters:
    - `resolution`: the cell size in degrees, a divisor of 180 (default 0.25);
    - `min_quality`: the lowest GDS 2.0 `quality_level` kept, 0 to 5 (default 4), or null to keep every pixel;
    - `sses_bias`: true to subtract the SSES bias from each pixel first (default false);
    - `bbox`: `[west, south, east, north]` to grid only that area (default: the globe);
    - `variable`: the variable to bin (default `sea_surface_temperature`);
    - `input`: the alias of the input holding the swaths (default: the first, primary one).
    """
    name = "bin_l2p"
    _check_parameters(name, parameters, {"resolution", "min_quality", "sses_bias", "bbox", "variable", "input"})
    source = _input(name, inputs, parameters)
    min_quality = parameters.get("min_quality", 4)
    if min_quality is not None and (not isinstance(min_quality, int) or isinstance(min_quality, bool)):
        raise InvalidInput(
            f"{name}: parameter min_quality must be a quality level 0 to 5, or null, not {min_quality!r}"
        )
    sses_bias = parameters.get("sses_bias", False)
    if not isinstance(sses_bias, bool):
        raise InvalidInput(f"{name}: parameter sses_bias must be true or false, not {sses_bias!r}")
    variable = parameters.get("variable", "sea_surface_temperature")
    if not isinstance(variable, str):
        raise InvalidInput(f"{name}: parameter variable must name one of {_names(source.data_vars)}")
    try:
        result = toolbox_bin_l2p(
            source,
            resolution=parameters.get("resolution", 0.25),
            bbox=_bbox(name, parameters["bbox"]) if "bbox" in parameters else None,
            min_quality=min_quality,
            variable=variable,
            sses_bias=sses_bias,
        )
    except InvalidInput as error:  # the toolbox's message, named as the user's parameter
        raise InvalidInput(f"{name}: {error.detail.removeprefix('bin_l2p: ')}") from None
    result.attrs = _derived_attrs(source, f"L3 binning at {result.lat.size} x {result.lon.size} cells")
    result.attrs["processing_level"] = "L3"
    return result


HEAT_FLUX_VARIABLES = {
    "sst_variable": ("sst", "analysed_sst"),
    "wind_speed_variable": ("met", "wind_speed"),
    "air_temperature_variable": ("met", "air_temperature"),
    "specific_humidity_variable": ("met", "specific_humidity"),
}


def heat_flux(inputs: Inputs, parameters: Parameters) -> xr.Dataset:
    """Turbulent air-sea fluxes by the COARE 3.6 bulk algorithm (`nephelae.toolbox.heat_fluxes`), on the met grid.

    Two inputs, matched by time (`group_by: day` pairs the day's SST and meteorology): `sst`, a gridded SST (e.g.
    the L4 analysis), and `met`, near-surface wind speed, air temperature and specific humidity. Ice-covered SST
    cells are left out (COARE describes open water), then the SST is put on the met grid: averaged over the met
    cells when its grid divides them (0.25 to 0.5 degrees), interpolated otherwise. The result holds
    `surface_upward_latent_heat_flux`, `surface_upward_sensible_heat_flux` (W m-2, positive from the ocean to the
    air) and `magnitude_of_surface_downward_stress` (N m-2) at the met times.

    Parameters:
    - `sst_variable` (default `analysed_sst`), `wind_speed_variable` (`wind_speed`), `air_temperature_variable`
      (`air_temperature`), `specific_humidity_variable` (`specific_humidity`): the variables' names;
    - `zu`, `zt`, `zq`: heights in metres of the wind (default 10), air temperature (2) and humidity (2);
    - `max_sea_ice_fraction`: SST cells with more sea ice are left out (default 0.15; null keeps them all);
    - `sea_ice_variable`: the sea ice fraction in the SST input (default `sea_ice_fraction`, used when present).
    """
    name = "heat_flux"
    known = {*HEAT_FLUX_VARIABLES, "zu", "zt", "zq", "max_sea_ice_fraction", "sea_ice_variable"}
    _check_parameters(name, parameters, known)
    fields = _heat_flux_fields(name, inputs, parameters)
    met = inputs["met"]
    heights = {key: parameters.get(key, default) for key, default in (("zu", 10.0), ("zt", 2.0), ("zq", 2.0))}
    try:
        result = heat_fluxes(
            regrid_like(_open_water(name, inputs["sst"], fields["sst_variable"], parameters), met),
            fields["wind_speed_variable"].reset_coords(drop=True),
            fields["air_temperature_variable"].reset_coords(drop=True),
            fields["specific_humidity_variable"].reset_coords(drop=True),
            **heights,
        ).reset_coords(drop=True)  # the met's sensor heights describe its inputs, not the surface fluxes
    except InvalidInput as error:
        raise InvalidInput(f"{name}: {error.detail.removeprefix('heat_fluxes: ')}") from None  # the user's names
    result = _with_met_times(result, met)
    result.attrs = _derived_attrs(inputs["sst"], "COARE 3.6 turbulent air-sea fluxes")
    met_title = met.attrs.get("title")
    result.attrs["source"] = f"{inputs['sst'].attrs.get('title', 'SST')} and {met_title or 'near-surface meteorology'}"
    return result


def _heat_flux_fields(name: str, inputs: Inputs, parameters: Parameters) -> dict[str, xr.DataArray]:
    """The SST, wind speed, air temperature and specific humidity named by the parameters, from their inputs."""
    if not {"sst", "met"} <= set(inputs):
        raise InvalidInput(f"{name}: the spec needs two inputs named sst and met, not {_names(inputs)}")
    fields = {}
    for parameter, (alias, default) in HEAT_FLUX_VARIABLES.items():
        source = _input(name, inputs, {"input": alias})
        variable = parameters.get(parameter, default)
        if not isinstance(variable, str) or variable not in source.data_vars:
            raise InvalidInput(f"{name}: parameter {parameter} must name one of {_names(source.data_vars)}")
        fields[parameter] = source[variable]
    return fields


def _open_water(name: str, source: xr.Dataset, sst: xr.DataArray, parameters: Parameters) -> xr.DataArray:
    """The SST without its cells covered by more sea ice than `max_sea_ice_fraction` (when the input tells)."""
    limit = parameters.get("max_sea_ice_fraction", 0.15)
    variable = parameters.get("sea_ice_variable", "sea_ice_fraction")
    if limit is None:
        return sst
    if not isinstance(limit, int | float) or isinstance(limit, bool) or not 0 <= limit <= 1:
        raise InvalidInput(f"{name}: parameter max_sea_ice_fraction must be a fraction 0 to 1, or null, not {limit!r}")
    if not isinstance(variable, str) or variable not in source.data_vars:
        if "sea_ice_variable" in parameters:
            raise InvalidInput(f"{name}: parameter sea_ice_variable must name one of {_names(source.data_vars)}")
        return sst  # no ice information in this SST product: nothing to leave out
    return sst.where(~(source[variable] > limit))  # a cell without ice information counts as open water


def _with_met_times(result: xr.Dataset, met: xr.Dataset) -> xr.Dataset:
    """The met's time bounds on the result, times stored as CF-1.8 allows."""
    if "time_bnds" in met.data_vars and "time" in result.dims:
        result["time_bnds"] = met["time_bnds"].reset_coords(drop=True)
        result["time"].attrs["bounds"] = "time_bnds"
    for time_name in ("time", "time_bnds"):  # CF-1.8 has no 64-bit integers: xarray's default for whole times
        if time_name in result.variables and "dtype" not in result[time_name].encoding:
            result[time_name].encoding.update(TIME_ENCODING)
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
    # the source's time units, for the time and its bounds alike, as doubles: a middle time needs not be a whole
    # number of units, and CF-1.8 has no 64-bit integers (xarray's choice for whole numbers)
    encoding = {**units, "dtype": "float64"} if units else dict(TIME_ENCODING)
    result["time"].encoding = dict(encoding)
    result["time_bnds"] = (("time", "nv"), np.array([[first, last]], dtype=times.dtype))
    result["time_bnds"].encoding = dict(encoding)
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


def _bbox(name: str, value: object) -> tuple[float, float, float, float]:
    """[W, S, E, N] or 'W,S,E,N', checked: numbers, latitudes within [-90, 90] with S <= N, longitudes in degrees."""
    parts: Sequence[object] = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else ()
    numbers = [number for number in map(_number, parts) if number is not None]
    if len(numbers) != 4 or len(parts) != 4:
        raise InvalidInput(f"{name}: bbox must be [west, south, east, north] in degrees, not {value!r}")
    west, south, east, north = numbers
    if not -90 <= south <= north <= 90 or not all(-180 <= lon <= 360 for lon in (west, east)):
        raise InvalidInput(f"{name}: bbox {numbers} needs -90 <= south <= north <= 90 and longitudes in [-180, 360]")
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
