"""The analysis operations: checked and sized by `estimate.select`, computed, rendered in the format asked for.

Plain functions of a session, a principal (None for internal callers such as the landing page's quicklooks, which
check the dataset is public themselves) and the settings; the HTTP layer only parses and converts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
import xarray as xr
from sqlalchemy.orm import Session

from nephelae.accounts import Principal
from nephelae.analysis import outputs
from nephelae.analysis.areamean import INLINE_BELOW, area_mean_sums, combine, start_pool
from nephelae.analysis.estimate import Selection, select
from nephelae.analysis.formats import Format, check_format
from nephelae.analysis.outputs import Rendered
from nephelae.analysis.request import AnalysisRequest
from nephelae.analysis.slab import FileSums, as_unsigned, valid_interval
from nephelae.catalog.access import open_dataset
from nephelae.catalog.query import Interval
from nephelae.config import Settings
from nephelae.db.models import Dataset, Granule
from nephelae.toolbox import area_mean, climatology, subset
from nephelae.toolbox.measures import with_cell_method
from nephelae.toolbox.timeseries import AREA_MEAN_METHOD

TIME_MEAN_METHOD = "time: mean"


def analyse(
    session: Session, principal: Principal | None, settings: Settings, request: AnalysisRequest, format: str
) -> Rendered:
    """Run `request` and render it as `format` (checked first: nothing is read for a format the operation lacks)."""
    chosen = check_format(request.operation, format)
    selection = select(session, principal, settings, request)
    if request.operation == "timeseries":
        return _render_series(area_mean_series(session, selection), selection, chosen)
    if request.operation == "map":
        return _render_map(time_mean_map(session, selection), selection, chosen)
    result = subset_dataset(session, selection) if request.operation == "subset" else climatology_of(session, selection)
    return outputs.write_netcdf(result, outputs.filename_stem(selection))


def prepare_workers(session: Session) -> None:
    """Start the worker processes now (in the background) if some dataset has enough granules to use them.

    They take seconds to start, once per process: better at server start than in a user's first request.
    """
    largest = session.scalar(sa.select(sa.func.max(Dataset.granule_count)))
    if largest is not None and largest >= INLINE_BELOW:
        start_pool()


def area_mean_series(session: Session, selection: Selection) -> xr.Dataset:
    """The cos-latitude weighted mean over the box, per time step, of each variable (with provenance).

    On a regular grid each granule's slab is read and reduced in worker processes; otherwise (swaths, Zarr) the
    granules are stacked lazily and reduced by `toolbox.area_mean`. Both give the same numbers.
    """
    request = selection.request
    if selection.slab is None:
        series = area_mean(_open(session, selection), list(request.variables)).compute()
    else:
        sums = area_mean_sums(selection.paths, selection.slab, request.variables)
        sums = [_dated(part, granule) for part, granule in zip(sums, selection.granules, strict=True)]
        times, means = combine(sums, request.variables)
        series = _series_dataset(selection, times, means)
        series = subset(series, time=_window(selection))
    series.attrs = outputs.provenance(selection, _source_attributes(selection), keep_source=False)
    return series


def _dated(part: FileSums, granule: Granule) -> FileSums:
    """A granule without a time variable (dated by its attributes or name) takes its catalog date."""
    undated = np.isnat(part.times.astype("datetime64[ns]"))
    moment = _catalog_time(granule)
    if not undated.any() or moment is None:
        return part
    return replace(part, times=np.where(undated, moment.astype(np.int64), part.times))


def _catalog_time(granule: Granule) -> np.datetime64 | None:
    """The middle of the granule's time coverage in the catalog, as UTC."""
    if granule.time_start is None or granule.time_end is None:
        return None
    start, end = (_naive_utc(moment) for moment in (granule.time_start, granule.time_end))
    return start + (end - start) / 2


def _naive_utc(moment: dt.datetime) -> np.datetime64:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return np.datetime64(moment, "ns")


def _series_dataset(selection: Selection, times: np.ndarray, means: dict[str, np.ndarray]) -> xr.Dataset:
    described = {str(item.get("name")): item for item in selection.dataset.variables or []}
    data = {}
    for name, values in means.items():
        attrs = {
            key: described[name][key] for key in ("units", "standard_name", "long_name") if described[name].get(key)
        }
        data[name] = xr.DataArray(values, dims="time", attrs=with_cell_method(attrs, AREA_MEAN_METHOD))
    order = np.argsort(times, kind="stable")
    time = xr.DataArray(times[order], dims="time", attrs=outputs.TIME_ATTRIBUTES)
    return xr.Dataset({name: da[order] for name, da in data.items()}, coords={"time": time})


def subset_dataset(session: Session, selection: Selection) -> xr.Dataset:
    """The box, interval and variables of the granules, lazily (written chunk by chunk when rendered)."""
    lazy = _open(session, selection, as_stored=True)
    lazy.attrs = outputs.provenance(selection, lazy.attrs, keep_source=True)
    return lazy


def climatology_of(session: Session, selection: Selection) -> xr.Dataset:
    """The mean of each variable per month or day of the year over the box, computed."""
    lazy = _open(session, selection)
    result = climatology(lazy, selection.request.period).compute()
    result.attrs = outputs.provenance(selection, lazy.attrs, keep_source=False)
    return result


def time_mean_map(session: Session, selection: Selection) -> xr.Dataset:
    """The time mean of each variable over the interval, on the grid of the box."""
    lazy = _open(session, selection)
    means = {}
    for name in selection.request.variables:
        field = lazy[name].astype("float64").mean("time", skipna=True, keep_attrs=True)
        field.attrs = with_cell_method(lazy[name].attrs, TIME_MEAN_METHOD)
        means[name] = field
    result = xr.Dataset(means).compute()
    result.attrs = outputs.provenance(selection, lazy.attrs, keep_source=False)
    return result


def _open(session: Session, selection: Selection, *, as_stored: bool = False) -> xr.Dataset:
    """The granules of the selection, lazily; values outside each variable's valid range are NaN unless `as_stored`
    (as on the fast path: `slab.valid_interval`)."""
    request = selection.request
    window = _window(selection)
    interval = None if window is None else Interval(*window)
    ds = open_dataset(session, request.dataset, time=interval, bbox=request.bbox, variables=list(request.variables))
    if "time" in ds.dims and "time" not in ds.coords and ds.sizes["time"] == len(selection.granules):
        # Granules dated only by their attributes or names (one step each): the catalog's dates.
        times = [_catalog_time(granule) for granule in selection.granules]
        if all(moment is not None for moment in times):
            ds = ds.assign_coords(time=("time", np.array(times, dtype="datetime64[ns]"), outputs.TIME_ATTRIBUTES))
    return ds if as_stored else _within_valid_ranges(ds, request.variables)


def _within_valid_ranges(ds: xr.Dataset, names: tuple[str, ...]) -> xr.Dataset:
    for name in names:
        variable = ds[name]
        encoding = variable.encoding
        stored = np.dtype(encoding.get("dtype", variable.dtype))
        if not (np.issubdtype(variable.dtype, np.number) and np.issubdtype(stored, np.number)):
            continue  # dates, text: no range to apply
        given = {**variable.attrs, "_Unsigned": encoding.get("_Unsigned", "false")}  # xarray moved it to encoding
        attributes, stored = as_unsigned(given, stored)
        scale, offset = float(encoding.get("scale_factor", 1.0)), float(encoding.get("add_offset", 0.0))
        bounds = valid_interval(attributes, stored, scale, offset)
        if bounds is not None:
            masked = variable.where((variable >= bounds[0]) & (variable <= bounds[1]))
            ds[name] = masked.assign_attrs(variable.attrs)
    return ds


def _render_series(series: xr.Dataset, selection: Selection, chosen: Format) -> Rendered:
    stem = outputs.filename_stem(selection)
    variables = selection.request.variables
    if chosen == "netcdf":
        return outputs.write_netcdf(series, stem)
    if chosen == "csv":
        return Rendered("csv", f"{stem}.csv", content=outputs.series_csv(series, variables))
    variable = outputs.single(variables, f"a {chosen.upper()} time series")
    if chosen == "json":
        return Rendered("json", f"{stem}.json", content=outputs.series_json(series, variable))
    title = f"{selection.dataset.id}: area mean of {variable} over {_box(selection)}"
    return Rendered("png", f"{stem}.png", content=outputs.series_png(series, variable, title))


def _render_map(field: xr.Dataset, selection: Selection, chosen: Format) -> Rendered:
    stem = outputs.filename_stem(selection)
    if chosen == "netcdf":
        return outputs.write_netcdf(field, stem)
    variable = outputs.single(selection.request.variables, "a PNG map")
    title = f"{selection.dataset.id}: mean {variable} {_period(selection)}"
    return Rendered("png", f"{stem}.png", content=outputs.field_png(field, variable, title))


def _period(selection: Selection) -> str:
    first, last = selection.granules[0].time_start, selection.granules[-1].time_end
    if first is None or last is None:
        return ""
    start, end = f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}"
    return start if start == end else f"{start} to {end}"


def _box(selection: Selection) -> str:
    box = selection.request.bbox
    return "the globe" if box is None else f"{box.west:g},{box.south:g},{box.east:g},{box.north:g} (W,S,E,N)"


def _window(selection: Selection) -> tuple[dt.datetime | None, dt.datetime | None] | None:
    """The time steps to keep: the interval asked for, or for one instant, those of the granules covering it.

    A daily granule covers its day but its time step is at noon: asked for "2020-02-01", a user means that day.
    """
    interval = selection.request.time
    if interval is None:
        return None
    if interval.start is None or interval.start != interval.end:
        return (interval.start, interval.end)
    starts = [granule.time_start for granule in selection.granules if granule.time_start is not None]
    ends = [granule.time_end for granule in selection.granules if granule.time_end is not None]
    return (min(starts, default=interval.start), max(ends, default=interval.end))


def _source_attributes(selection: Selection) -> dict[str, Any]:
    """The global attributes of the first granule, for those a derived product keeps."""
    path = Path(selection.paths[0])
    if not path.is_file():
        return {}
    with xr.open_dataset(path, engine="netcdf4", decode_times=False) as first:
        return dict(first.attrs)
