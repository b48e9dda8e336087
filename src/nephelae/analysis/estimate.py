"""What an analysis will read, found and sized from the catalog before any data is read.

The size is granules x grid cells in the box x variables: the values the analysis has to read. Above the
`analysis_max_cells` setting the request is refused with `RequestTooLarge`, which says to run it as a campaign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netCDF4
from sqlalchemy.orm import Session

from nephelae.accounts import Principal
from nephelae.analysis.request import AnalysisRequest, interval_text
from nephelae.analysis.slab import Slab, plan_slab
from nephelae.catalog.access import find_granules, granule_location
from nephelae.catalog.datasets import get_dataset, readable_dataset
from nephelae.config import Settings
from nephelae.db.models import Dataset, Granule
from nephelae.errors import InvalidInput, NotFound, RequestTooLarge

CAMPAIGN_PROCESSORS = {
    "subset": "nephelae.processors:subset",
    "timeseries": "nephelae.processors:subset",
    "climatology": "nephelae.processors:monthly_mean",
    "map": "nephelae.processors:monthly_mean",
}


@dataclass(frozen=True)
class Selection:
    """The granules an analysis reads, where they are, and the grid slab of its box (None off a regular grid)."""

    dataset: Dataset
    request: AnalysisRequest
    granules: list[Granule]
    paths: list[str]
    slab: Slab | None
    values: int  # the estimated number of values read

    @property
    def relative_paths(self) -> list[str]:
        return [granule.path for granule in self.granules]


def select(session: Session, principal: Principal | None, settings: Settings, request: AnalysisRequest) -> Selection:
    """The checked, sized selection of a request: 404/403 for the dataset, 400 for a variable or box, 413 if big."""
    dataset = (
        get_dataset(session, request.dataset)
        if principal is None
        else readable_dataset(session, principal, request.dataset)
    )
    variables = check_variables(dataset, request.variables)
    granules = list(find_granules(session, dataset.id, bbox=request.bbox, interval=request.time))
    if not granules:
        raise NotFound(
            f"no granule of {dataset.id} in time {interval_text(request.time) or 'any'} and the box; "
            f"the dataset covers {_coverage(dataset)}"
        )
    paths = [granule_location(dataset, granule) for granule in granules]
    slab = _regular_slab(paths[0], request, variables) if granules[0].footprint is None else None
    if slab is not None and slab.cells == 0:
        raise InvalidInput(f"the box {_box(request)} holds no grid cell of {dataset.id}: widen it")
    cells = slab.values if slab is not None else _granule_cells(paths[0], request.variables, granules[0].size)
    values = len(granules) * cells * len(request.variables)
    check_size(settings, request, len(granules), values)
    return Selection(dataset, request, granules, paths, slab, values)


def check_variables(dataset: Dataset, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The catalog's description of each requested variable; an unknown one is `InvalidInput` listing the known."""
    known = {str(item.get("name")): item for item in dataset.variables or []}
    missing = [name for name in names if name not in known]
    if missing:
        listing = ", ".join(sorted(known)) or "none catalogued yet"
        raise InvalidInput(f"{dataset.id} has no variable {', '.join(missing)}; its variables: {listing}")
    return {name: known[name] for name in names}


def check_size(settings: Settings, request: AnalysisRequest, granules: int, values: int) -> None:
    limit = settings.analysis_max_cells
    if values <= limit:
        return
    processor = CAMPAIGN_PROCESSORS[request.operation]
    raise RequestTooLarge(
        f"this {request.operation} reads about {values:,} values ({granules:,} granules x time steps x cells in the "
        f"box x {len(request.variables)} variable(s)), above the limit of {limit:,} for an answer within seconds; "
        f"narrow the box, the time or the variables, or run it as a campaign: `nephelae campaigns submit SPEC.yaml` "
        f"with processor {processor} over dataset {request.dataset}"
    )


def _regular_slab(path: str, request: AnalysisRequest, variables: dict[str, dict[str, Any]]) -> Slab | None:
    """The slab of the box, when the granules are NetCDF files on a 1-D grid and every variable is (time, y, x)."""
    if not Path(path).is_file():
        return None
    box = (
        None if request.bbox is None else (request.bbox.west, request.bbox.south, request.bbox.east, request.bbox.north)
    )
    try:
        slab = plan_slab(path, box)
    except OSError as error:
        raise InvalidInput(f"cannot read granule {Path(path).name}: {error}; ask an operator to re-index") from None
    if slab is None or any(tuple(item.get("dims") or ()) != slab.dims for item in variables.values()):
        return None
    return slab


def _granule_cells(path: str, names: tuple[str, ...], size: int | None) -> int:
    """The size of the largest requested variable of one granule (swaths: their box is not known before reading).

    Names in groups carry their path (`data_01/ku/ssha`). A granule that cannot be sized this way counts as many
    values as it has bytes: unknown must not mean small.
    """
    target = path if Path(path).is_file() else f"file://{Path(path).resolve()}#mode=zarr,file"
    try:
        with netCDF4.Dataset(target, "r") as dataset:
            return int(max(math.prod(dataset[name].shape) for name in names))
    except (OSError, ValueError, IndexError, KeyError):
        return max(1, size or 0)  # the read itself will report what is wrong


def _box(request: AnalysisRequest) -> str:
    box = request.bbox
    return "(whole globe)" if box is None else f"{box.west:g},{box.south:g},{box.east:g},{box.north:g}"


def _coverage(dataset: Dataset) -> str:
    if dataset.time_start is None or dataset.time_end is None:
        return "nothing yet (not indexed)"
    return f"{dataset.time_start.isoformat()} to {dataset.time_end.isoformat()}"
