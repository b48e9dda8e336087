"""Which variables of a dataset are measured quantities, and the CF bookkeeping of operations on them."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from nephelae.errors import InvalidInput

# Attributes that describe the stored values, not the quantity: they stop being true once values are computed.
STORAGE_ATTRIBUTES = (
    "_FillValue",
    "missing_value",
    "scale_factor",
    "add_offset",
    "valid_min",
    "valid_max",
    "valid_range",  # in packed units when the source is packed: wrong for a computed quantity
    "_Unsigned",
)


def is_flag(variable: xr.DataArray) -> bool:
    """True for CF flag variables (masks, quality levels): averaging their codes has no meaning."""
    return any(key in variable.attrs for key in ("flag_values", "flag_masks", "flag_meanings"))


def with_time_named_time(ds: xr.Dataset, operation: str) -> tuple[xr.Dataset, Hashable]:
    """`ds` with its time dimension renamed `time` (IMOS files say TIME), and the original name to restore.

    The time dimension is `time`, else the one whose coordinate says it is time (standard_name, axis T, or dates).
    A dataset without one, or with an empty one, is refused with the reason.
    """
    name = _time_dimension(ds)
    if name is None:
        dims = ", ".join(map(str, ds.dims)) or "none"
        raise InvalidInput(f"{operation} needs a 'time' dimension; the dataset has dimensions: {dims}")
    if ds.sizes[name] == 0:
        raise InvalidInput(f"{operation} got an empty time axis: widen the time range of the request")
    return (ds if name == "time" else ds.rename({name: "time"})), name


def _time_dimension(ds: xr.Dataset) -> Hashable | None:
    if "time" in ds.dims:
        return "time"
    for dim in ds.dims:
        if dim in ds.coords:
            coord = ds[dim]
            is_dates = np.issubdtype(coord.dtype, np.datetime64)
            if is_dates or coord.attrs.get("standard_name") == "time" or coord.attrs.get("axis") == "T":
                return dim
    return None


def measured_variables(
    ds: xr.Dataset, variables: Sequence[str] | None, dims: Sequence[Hashable], operation: str
) -> list[str]:
    """The numeric variables of `ds` having all `dims`: all non-flag ones, or exactly `variables` (checked)."""
    if variables:
        missing = sorted(set(variables) - {str(name) for name in ds.data_vars})
        if missing:
            known = ", ".join(map(str, ds.data_vars)) or "none"
            raise InvalidInput(f"no variable {', '.join(missing)}; the dataset has: {known}")
        for name in variables:
            if not _fits(ds[name], dims):
                wanted = ", ".join(map(str, dims))
                raise InvalidInput(f"{operation} needs numeric variables with dimensions {wanted}; {name} is not one")
        return list(variables)
    chosen = [str(name) for name, da in ds.data_vars.items() if _fits(da, dims) and not is_flag(da)]
    if not chosen:
        raise InvalidInput(
            f"{operation}: the dataset has no numeric variable with dimensions {', '.join(map(str, dims))}"
        )
    return chosen


def _fits(da: xr.DataArray, dims: Sequence[Hashable]) -> bool:
    return all(dim in da.dims for dim in dims) and np.issubdtype(da.dtype, np.number)


def with_cell_method(attrs: Mapping[Any, Any], method: str) -> dict[Any, Any]:
    """The attributes of a computed quantity: storage attributes dropped, `method` appended to cell_methods (CF 7.3)."""
    kept = {key: value for key, value in attrs.items() if key not in STORAGE_ATTRIBUTES}
    previous = str(kept.get("cell_methods", "")).strip()
    kept["cell_methods"] = f"{previous} {method}".strip()
    return kept
