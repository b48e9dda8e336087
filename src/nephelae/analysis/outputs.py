"""Analysis results as files: NetCDF (CF-1.8 with provenance), CSV, JSON and PNG quicklooks.

Every NetCDF answer says where it comes from: the global attributes name the Nephelae version, the dataset, the
granules read and the request, and `history` gains a line. A NetCDF answer is written to a temporary file (by dask,
chunk by chunk for a lazy subset, so memory follows the chunks and not the archive) that the caller removes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from nephelae import __version__
from nephelae.analysis.estimate import Selection
from nephelae.analysis.formats import EXTENSIONS, MEDIA_TYPES, Format
from nephelae.errors import InvalidInput
from nephelae.toolbox import map_png, timeseries_png

MAX_LISTED_GRANULES = 1000  # in the granule list attribute; the count is always complete
# Global attributes of the source that describe the derived product just as well.
KEPT_ATTRIBUTES = ("institution", "source", "references", "license", "platform", "sensor", "project", "creator_name")
TIME_ATTRIBUTES = {"standard_name": "time", "long_name": "time", "axis": "T"}


@dataclass(frozen=True)
class Rendered:
    """An answer: in memory (`content`) or in a temporary file (`path`, which the receiver deletes)."""

    format: Format
    filename: str
    content: bytes | None = None
    path: Path | None = None

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def provenance(selection: Selection, source: Mapping[Any, Any], *, keep_source: bool) -> dict[str, Any]:
    """The global attributes of a result: the source's (all of them for a subset), CF-1.8 and where it comes from."""
    request, dataset = selection.request, selection.dataset
    base = dict(source) if keep_source else {key: source[key] for key in KEPT_ATTRIBUTES if key in source}
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    line = f"{now} Nephelae {__version__} analysis {request.operation}: {request.as_json()}"
    previous = str(source.get("history", "")).strip()
    listed = selection.relative_paths[:MAX_LISTED_GRANULES]
    more = len(selection.granules) - len(listed)
    return base | {
        "Conventions": "CF-1.8",
        "title": f"{dataset.title}: {request.operation} of {', '.join(request.variables)}",
        "source": str(source.get("source") or f"{dataset.title} (dataset {dataset.id})"),
        "history": f"{line}\n{previous}".strip(),
        "date_created": now,
        "nephelae_version": __version__,
        "nephelae_dataset": dataset.id,
        "nephelae_granule_count": np.int32(len(selection.granules)),
        "nephelae_granules": "\n".join(listed) + (f"\n... and {more} more" if more > 0 else ""),
        "nephelae_request": request.as_json(),
    }


def write_netcdf(ds: xr.Dataset, stem: str, directory: Path | None = None) -> Rendered:
    """`ds` written to a temporary NetCDF-4 file (lazy data is computed and written chunk by chunk)."""
    handle, name = tempfile.mkstemp(prefix="nephelae-analysis-", suffix=".nc", dir=directory)
    os.close(handle)
    path = Path(name)
    ready, encoding = cf_ready(ds)
    try:
        ready.to_netcdf(path, format="NETCDF4", engine="netcdf4", encoding=encoding)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Rendered("netcdf", f"{stem}.nc", path=path)


def cf_ready(ds: xr.Dataset) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """`ds` and its encoding adjusted to what CF-1.8 asks of a file (the checker's high-priority rules).

    Coordinates carry no _FillValue; longitudes of a box across the antimeridian are made continuous (170..190:
    a coordinate must be monotonic); 64-bit integers (not a CF type) become 32-bit; every variable gets a name.
    """
    ds = _continuous_longitudes(ds)
    encoding: dict[str, dict[str, Any]] = {}
    for name, variable in ds.variables.items():
        key = str(name)
        if name in ds.coords or key.endswith(("_bnds", "_bounds")):
            encoding[key] = {"_FillValue": None}
        if np.issubdtype(variable.dtype, np.datetime64):
            encoding[key] = encoding.get(key, {}) | _time_encoding(variable)
        elif variable.dtype == np.int64:
            ds[key] = variable.astype(np.int32)
        if not ({"long_name", "standard_name"} & set(ds[key].attrs)):
            ds[key].attrs["long_name"] = key.replace("_", " ")
    return ds, encoding


EPOCH_UNITS = "seconds since 1970-01-01 00:00:00"
CF_TIME_DTYPES = ("int32", "float32", "float64")


def _time_encoding(variable: xr.Variable) -> dict[str, Any]:
    """The source's time units when it had some, never stored as int64."""
    kept = {"units": variable.encoding.get("units") or EPOCH_UNITS, "calendar": "standard"}
    dtype = variable.encoding.get("dtype")
    return kept | {
        "dtype": str(np.dtype(dtype)) if dtype is not None and str(np.dtype(dtype)) in CF_TIME_DTYPES else "float64"
    }


def _continuous_longitudes(ds: xr.Dataset) -> xr.Dataset:
    for name in ("lon", "longitude"):
        if name in ds.coords and ds[name].ndim == 1 and ds[name].size > 1:
            values = np.asarray(ds[name].values, dtype=float)
            if np.any(np.diff(values) <= 0):
                unwrapped = np.unwrap(values, period=360.0).astype(ds[name].dtype)
                ds = ds.assign_coords({name: ds[name].copy(data=unwrapped)})
    return ds


def series_json(ds: xr.Dataset, variable: str) -> bytes:
    """`{"variable", "units", "points": [{"time", "value"}]}`; a missing value is null."""
    series = ds[variable]
    points = [
        {"time": _iso(moment), "value": None if not np.isfinite(value) else float(value)}
        for moment, value in zip(ds["time"].values, np.asarray(series.values, dtype=float), strict=True)
    ]
    document = {"variable": variable, "units": series.attrs.get("units"), "points": points}
    return json.dumps(document).encode()


def series_csv(ds: xr.Dataset, variables: tuple[str, ...]) -> bytes:
    """One row per time: `time` (RFC 3339) and a column per variable; a missing value is empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time", *variables])
    columns = [np.asarray(ds[name].values, dtype=float) for name in variables]
    for index, moment in enumerate(ds["time"].values):
        writer.writerow([_iso(moment), *(_cell(column[index]) for column in columns)])
    return buffer.getvalue().encode()


def series_png(ds: xr.Dataset, variable: str, title: str) -> bytes:
    return timeseries_png(ds[variable], title=title)


def field_png(ds: xr.Dataset, variable: str, title: str) -> bytes:
    return map_png(ds[variable], title=title)


def single(variables: tuple[str, ...], what: str) -> str:
    if len(variables) != 1:
        raise InvalidInput(f"{what} shows one variable; ask for one, or for NetCDF to get {', '.join(variables)}")
    return variables[0]


def filename_stem(selection: Selection) -> str:
    request = selection.request
    return f"{request.dataset}-{request.operation}-{'-'.join(request.variables)}"[:120]


def extension(name: Format) -> str:
    return EXTENSIONS[name]


def _iso(moment: np.datetime64) -> str:
    return str(np.datetime_as_string(moment, unit="s")) + "Z"


def _cell(value: float) -> str:
    return "" if not np.isfinite(value) else repr(float(value))
