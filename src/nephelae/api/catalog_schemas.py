"""The wire shapes of the catalog: datasets and pages of granules, as `/api/v1/datasets` returns them.

Boxes follow STAC: `[west, south, east, north]` in degrees, west > east when crossing the antimeridian. Datetimes
are ISO 8601 in UTC. A dataset's root and pattern name places on the server's filesystem: only admins see them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from nephelae.db.models import Dataset, Granule

BBox = tuple[float, float, float, float]


def _bbox(west: float | None, south: float | None, east: float | None, north: float | None) -> BBox | None:
    if west is None or south is None or east is None or north is None:
        return None
    return (west, south, east, north)


class Variable(BaseModel):
    """A variable of a dataset's granules, with its CF attributes when the files give them."""

    name: str
    dims: list[str] = Field(default_factory=list)
    dtype: str | None = None
    units: str | None = None
    standard_name: str | None = None
    long_name: str | None = None

    @classmethod
    def of(cls, variable: dict[str, Any]) -> Variable:
        # Every field given explicitly, null or not: the detail route serves with `exclude_unset`.
        return cls(
            name=str(variable.get("name")),
            dims=list(variable.get("dims") or []),
            **{name: variable.get(name) for name in ("dtype", "units", "standard_name", "long_name")},
        )


class DatasetSummary(BaseModel):
    """A dataset as listed: what it holds and the summary kept by its last indexing."""

    id: str
    title: str
    description: str
    license: str
    public: bool = Field(description="Readable by every approved account, whatever their projects.")
    granule_count: int = Field(description="Granules found by the last indexing, readable or not.")
    unreadable_count: int = Field(description="Granules the indexer could not read (not searchable).")
    time_start: dt.datetime | None = Field(description="Start of the earliest readable granule.")
    time_end: dt.datetime | None = Field(description="End of the latest readable granule.")
    bbox: BBox | None = Field(description="[west, south, east, north] of the readable granules; null before indexing.")
    variables: list[Variable]
    indexed_at: dt.datetime | None = Field(description="When the dataset was last indexed; null if never.")

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetSummary:
        return cls(**_summary_fields(dataset))


def _summary_fields(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "title": dataset.title,
        "description": dataset.description,
        "license": dataset.license,
        "public": dataset.public,
        "granule_count": dataset.granule_count,
        "unreadable_count": dataset.unreadable_count,
        "time_start": dataset.time_start,
        "time_end": dataset.time_end,
        "bbox": _bbox(dataset.west, dataset.south, dataset.east, dataset.north),
        "variables": [Variable.of(variable) for variable in dataset.variables],
        "indexed_at": dataset.indexed_at,
    }


class DatasetDetail(DatasetSummary):
    """One dataset in full. `root` and `pattern` are present for admins only (serve with `exclude_unset`)."""

    created_at: dt.datetime
    owner: str | None = Field(description="The account owning a derived dataset; null for archives.")
    provenance: dict[str, Any] = Field(description="How a derived dataset was made (campaign, processor, inputs).")
    root: str | None = Field(None, description="Directory or fsspec URL of the archive (admins only).")
    pattern: str | None = Field(None, description="Glob of the granules, relative to the root (admins only).")

    @classmethod
    def of_dataset(cls, dataset: Dataset, *, for_admin: bool) -> DatasetDetail:
        fields = _summary_fields(dataset)
        fields.update(created_at=dataset.created_at, owner=dataset.owner, provenance=dataset.provenance)
        if for_admin:
            fields.update(root=dataset.root, pattern=dataset.pattern)
        return cls(**fields)


class GranuleSummary(BaseModel):
    """One granule found by a search."""

    id: int
    path: str = Field(description="Relative to the dataset's root, '/'-separated.")
    time_start: dt.datetime | None
    time_end: dt.datetime | None
    bbox: BBox | None = Field(description="[west, south, east, north]; west > east crosses the antimeridian.")
    variables: list[str] = Field(description="Names of the granule's variables.")
    size: int = Field(description="Size in bytes.")

    @classmethod
    def of(cls, granule: Granule) -> GranuleSummary:
        return cls(
            id=granule.id,
            path=granule.path,
            time_start=granule.time_start,
            time_end=granule.time_end,
            bbox=_bbox(granule.west, granule.south, granule.east, granule.north),
            variables=[str(variable.get("name")) for variable in granule.variables],
            size=granule.size,
        )


class Link(BaseModel):
    rel: str
    href: str


class GranulePage(BaseModel):
    """A page of search results, in (time_start, id) order; follow `next_cursor` until it is null."""

    granules: list[GranuleSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")
    links: list[Link] = Field(description="`next`: the URL of the next page, when there is one.")
