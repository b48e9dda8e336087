"""Spatio-temporal search over the granules of a dataset, with stable cursor paging.

Antimeridian-aware on both sides: a box with west > east (query or granule) is handled as two boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from nephelae.catalog.query import BBox, Interval, decode_cursor, encode_cursor
from nephelae.db.models import Granule

MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Page:
    granules: list[Granule]
    next_cursor: str | None


def search_granules(
    session: Session,
    dataset_id: str,
    *,
    bbox: BBox | None = None,
    interval: Interval | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Readable granules of `dataset_id` intersecting `bbox` and `interval`, in (time_start, id) order."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Granule).where(Granule.dataset_id == dataset_id, Granule.status == "ok")
    query = query.where(time_overlaps(interval), space_overlaps(bbox))
    after = decode_cursor(cursor)
    if after is not None:
        start, granule_id = after
        query = query.where(or_(Granule.time_start > start, and_(Granule.time_start == start, Granule.id > granule_id)))
    granules = list(session.scalars(query.order_by(Granule.time_start, Granule.id).limit(limit + 1)))
    more = len(granules) > limit
    granules = granules[:limit]
    next_cursor = encode_cursor(granules[-1].time_start, granules[-1].id) if more else None
    return Page(granules=granules, next_cursor=next_cursor)


def time_overlaps(interval: Interval | None) -> ColumnElement[bool]:
    if interval is None:
        return true()
    conditions = []
    if interval.start is not None:
        conditions.append(Granule.time_end >= interval.start)
    if interval.end is not None:
        conditions.append(Granule.time_start <= interval.end)
    return and_(true(), *conditions)


def space_overlaps(bbox: BBox | None) -> ColumnElement[bool]:
    """Granule boxes (split at the antimeridian) intersecting the query box (split likewise)."""
    if bbox is None:
        return true()
    crossing = Granule.west > Granule.east
    clauses = []
    for west, south, east, north in bbox.parts():
        latitude = and_(Granule.south <= north, Granule.north >= south)
        straight = and_(~crossing, Granule.west <= east, Granule.east >= west)
        # A crossing granule covers [west, 180] and [-180, east].
        wrapped = and_(crossing, or_(Granule.west <= east, Granule.east >= west))
        clauses.append(and_(latitude, or_(straight, wrapped)))
    return or_(false(), *clauses)
