"""The wire objects of `/api/v1` as frozen dataclasses, and the query parameters the API takes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BBox = tuple[float, float, float, float]
BBoxLike = str | Sequence[float]
DatetimeLike = (
    str | dt.datetime | dt.date | tuple[dt.datetime | dt.date | str | None, dt.datetime | dt.date | str | None]
)
FINAL_STATUSES = frozenset({"completed", "completed_with_failures", "failed", "cancelled"})


def _moment(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None


def _box(value: Any) -> BBox | None:
    if not isinstance(value, Sequence) or len(value) != 4:
        return None
    west, south, east, north = (float(number) for number in value)
    return (west, south, east, north)


@dataclass(frozen=True)
class Dataset:
    """A dataset as the API describes it; `wire` holds the whole JSON object, fields newer servers add included."""

    id: str
    title: str
    description: str
    license: str
    public: bool
    granule_count: int
    unreadable_count: int
    time_start: dt.datetime | None
    time_end: dt.datetime | None
    bbox: BBox | None
    variables: list[dict[str, Any]]
    indexed_at: dt.datetime | None
    root: str | None = None  # admins only
    pattern: str | None = None  # admins only
    wire: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Dataset:
        return cls(
            id=data["id"],
            title=data.get("title", data["id"]),
            description=data.get("description", ""),
            license=data.get("license", ""),
            public=bool(data.get("public", False)),
            granule_count=int(data.get("granule_count", 0)),
            unreadable_count=int(data.get("unreadable_count", 0)),
            time_start=_moment(data.get("time_start")),
            time_end=_moment(data.get("time_end")),
            bbox=_box(data.get("bbox")),
            variables=list(data.get("variables") or []),
            indexed_at=_moment(data.get("indexed_at")),
            root=data.get("root"),
            pattern=data.get("pattern"),
            wire=dict(data),
        )


@dataclass(frozen=True)
class Granule:
    """One granule found by a search; `path` is relative to the dataset's root."""

    id: int
    path: str
    time_start: dt.datetime | None
    time_end: dt.datetime | None
    bbox: BBox | None
    variables: tuple[str, ...]
    size: int
    wire: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Granule:
        return cls(
            id=int(data["id"]),
            path=data["path"],
            time_start=_moment(data.get("time_start")),
            time_end=_moment(data.get("time_end")),
            bbox=_box(data.get("bbox")),
            variables=tuple(data.get("variables") or ()),
            size=int(data.get("size", 0)),
            wire=dict(data),
        )


@dataclass(frozen=True)
class Campaign:
    """A campaign as the API describes it; `counts` has pending, running, done, failed, cancelled and total tasks."""

    id: int
    name: str
    owner: str
    status: str  # queued | running | completed | completed_with_failures | failed | cancelled
    output_dataset: str
    counts: dict[str, int]
    progress: float  # fraction of the planned tasks finished
    error: str | None
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    wire: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the campaign has ended: it will not change any more unless retried."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Campaign:
        return cls(
            id=int(data["id"]),
            name=data.get("name", ""),
            owner=data.get("owner", ""),
            status=data["status"],
            output_dataset=data.get("output_dataset", ""),
            counts={name: int(value) for name, value in (data.get("counts") or {}).items()},
            progress=float(data.get("progress") or 0.0),
            error=data.get("error"),
            created_at=_moment(data.get("created_at")),
            started_at=_moment(data.get("started_at")),
            finished_at=_moment(data.get("finished_at")),
            wire=dict(data),
        )


@dataclass(frozen=True)
class CampaignTask:
    """One task of a campaign; `id` is its ordinal in the campaign, `log` the URL of its log."""

    id: int
    label: str
    status: str  # pending | running | done | failed | cancelled
    attempts: int
    error: str | None
    log: str | None
    duration: float | None
    worker: str | None
    wire: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CampaignTask:
        duration = data.get("duration")
        return cls(
            id=int(data["id"]),
            label=data.get("label", ""),
            status=data["status"],
            attempts=int(data.get("attempts", 0)),
            error=data.get("error"),
            log=data.get("log"),
            duration=None if duration is None else float(duration),
            worker=data.get("worker"),
            wire=dict(data),
        )


def bbox_param(bbox: BBoxLike | None) -> str | None:
    """`W,S,E,N` as the API takes it; the server checks the values."""
    if bbox is None or isinstance(bbox, str):
        return bbox or None
    return ",".join(repr(float(number)) for number in bbox)


def datetime_param(value: DatetimeLike | None) -> str | None:
    """An instant or `START/END` (open ends as `..`) as the API takes it; the server checks the values."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, tuple):
        start, end = (_instant(part) for part in value)
        return f"{start}/{end}"
    return _instant(value)


def _instant(value: dt.datetime | dt.date | str | None) -> str:
    if value is None:
        return ".."
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    return value.isoformat() if isinstance(value, dt.date) else value
