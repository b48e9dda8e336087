"""Lazy data access: the granules the catalog found, opened as one dask-backed xarray Dataset.

The catalog already knows every granule's time and place, so nothing lists a directory and nothing compares the
coordinates of one file with the next: grids are stacked along time as they are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

import xarray as xr
from sqlalchemy.orm import Session

from nephelae.accounts import Principal
from nephelae.catalog.datasets import get_dataset, readable_dataset
from nephelae.catalog.query import BBox, Interval
from nephelae.catalog.search import search_granules
from nephelae.catalog.stores import xarray_engine
from nephelae.db.models import Dataset, Granule
from nephelae.errors import InvalidInput, NotFound
from nephelae.toolbox import subset

PAGE = 1000


def granule_location(dataset: Dataset, granule: Granule) -> str:
    """Where a granule's file is: its path joined to the dataset root (a directory or a file:// URL)."""
    root = dataset.root.removeprefix("file://")
    return str(Path(root) / granule.path)


def find_granules(
    session: Session, dataset_id: str, *, bbox: BBox | None = None, interval: Interval | None = None
) -> Iterator[Granule]:
    """Every readable granule of a dataset matching the query, in time order, page by page."""
    cursor = None
    while True:
        page = search_granules(session, dataset_id, bbox=bbox, interval=interval, limit=PAGE, cursor=cursor)
        yield from page.granules
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def open_granule(dataset: Dataset, granule: Granule, *, chunks: dict[str, int] | None = None) -> xr.Dataset:
    """One granule, lazily (dask arrays in the file's own chunks)."""
    location = granule_location(dataset, granule)
    return xr.open_dataset(location, engine=xarray_engine(location), chunks=chunks or {})


def open_dataset(
    session: Session,
    dataset_id: str,
    *,
    principal: Principal | None = None,
    time: Interval | None = None,
    bbox: BBox | None = None,
    variables: Sequence[str] | None = None,
) -> xr.Dataset:
    """The matching granules of a dataset as one lazy Dataset along `time`, subset to `bbox` and `variables`.

    With a principal, the platform's access rules apply (operators and internal callers pass none). Swath
    granules are stacked along time too, which needs them to share a shape; gridded granules must share their grid
    (InvalidInput otherwise: their values would be placed on the first granule's coordinates).
    """
    dataset = (
        get_dataset(session, dataset_id) if principal is None else readable_dataset(session, principal, dataset_id)
    )
    granules = list(find_granules(session, dataset_id, bbox=bbox, interval=time))
    if not granules:
        raise NotFound(f"no granule of {dataset_id} matches the request (time {_describe(time)}, bbox {bbox})")
    swath = granules[0].footprint is not None
    locations = [granule_location(dataset, granule) for granule in granules]
    try:
        combined = xr.open_mfdataset(
            locations,
            engine=xarray_engine(locations[0]),
            combine="nested",
            concat_dim="time",
            data_vars="all" if swath else "minimal",
            coords="all" if swath else "minimal",
            compat="override",
            join="override" if swath else "exact",  # grids: a granule on another grid must not take the first's
            chunks={},
            preprocess=(lambda ds: ds[list(variables)]) if variables else None,
        )
    except ValueError as error:
        raise InvalidInput(f"the granules of {dataset_id} cannot be stacked along time: {error}") from None
    window = None if time is None else (time.start, time.end)
    return subset(combined, bbox=_plain(bbox), time=window, variables=variables)


def _plain(bbox: BBox | None) -> tuple[float, float, float, float] | None:
    return None if bbox is None else (bbox.west, bbox.south, bbox.east, bbox.north)


def _describe(interval: Interval | None) -> str:
    if interval is None:
        return "any"
    start = interval.start.isoformat() if isinstance(interval.start, dt.datetime) else ".."
    end = interval.end.isoformat() if isinstance(interval.end, dt.datetime) else ".."
    return f"{start}/{end}"
