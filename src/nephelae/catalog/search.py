"""Spatio-temporal search over the granules of a dataset, with stable cursor paging.

Antimeridian-aware on both sides: a box with west > east (query or granule) is handled as two boxes.

Results come in (time_start, id) order, `limit` at a time, and a query may match a million granules or none among
a million, so the search walks forward in time through the spatio-temporal index (`spatial`): first the granules
that started before the interval and still run into it, then windows of start times that grow until the page is
full. Each window asks the index for candidates, re-checks them on the exact columns and keeps the first ones in
order. The cost follows the size of the page, not of the dataset. Without a box, the (dataset, time_start) B-tree
already gives the order, and is used directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from nephelae.catalog.query import BBox, Interval, decode_cursor, encode_cursor
from nephelae.catalog.spatial import Part, TimeRange, candidate_ids, dataset_key
from nephelae.db.models import Dataset, Granule

MAX_LIMIT = 10_000
WHOLE_EARTH: Part = (-180.0, -90.0, 180.0, 90.0)
FIRST_WINDOW = dt.timedelta(days=1)  # when the dataset summary cannot say how dense the granules are
MAX_GROWTH = 8.0  # a window at most this many times the last: a dense period after a sparse one stays cheap


@dataclass(frozen=True)
class Page:
    granules: list[Granule]
    next_cursor: str | None


@dataclass(frozen=True)
class _Query:
    """One search, with the exact conditions every strategy applies to its candidates."""

    dataset_id: str
    bbox: BBox | None
    interval: Interval | None
    after: tuple[dt.datetime | None, int] | None

    @property
    def start(self) -> dt.datetime | None:
        return self.interval.start if self.interval else None

    @property
    def end(self) -> dt.datetime | None:
        return self.interval.end if self.interval else None

    @property
    def lowest_start(self) -> dt.datetime | None:
        """No result starts before this (the interval start or the cursor, whichever is later)."""
        bounds = [moment for moment in (self.start, self.after[0] if self.after else None) if moment is not None]
        return max(bounds, default=None)

    @property
    def parts(self) -> list[Part]:
        return self.bbox.parts() if self.bbox else [WHOLE_EARTH]

    def exact(self) -> list[ColumnElement[bool]]:
        return [Granule.status == "ok", time_overlaps(self.interval), space_overlaps(self.bbox), _after(self.after)]


def search_granules(
    session: Session,
    dataset_id: str,
    *,
    bbox: BBox | None = None,
    interval: Interval | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Readable granules of `dataset_id` intersecting `bbox` and `interval`, in (time_start, id) order.

    Pass the returned `next_cursor` to get the next page; it is None on the last page.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    query = _Query(dataset_id, bbox, interval, decode_cursor(cursor))
    if bbox is None and query.start is None:
        granules = _in_time_order(session, query, query.lowest_start, limit + 1)
    else:
        granules = _indexed(session, query, limit + 1)
    return _page(granules, limit)


def search_granules_by_scan(
    session: Session,
    dataset_id: str,
    *,
    bbox: BBox | None = None,
    interval: Interval | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """The same search as `search_granules` in plain SQL, without the spatio-temporal index.

    The reference the index is checked and measured against: simple and right, but it reads the dataset in time
    order until the page is full, which is slow for a small box or a late interval in a large dataset.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    query = _Query(dataset_id, bbox, interval, decode_cursor(cursor))
    return _page(_in_time_order(session, query, None, limit + 1), limit)


def _page(granules: list[Granule], limit: int) -> Page:
    more = len(granules) > limit
    granules = granules[:limit]
    next_cursor = encode_cursor(granules[-1].time_start, granules[-1].id) if more else None
    return Page(granules=granules, next_cursor=next_cursor)


def _in_time_order(session: Session, query: _Query, lowest: dt.datetime | None, wanted: int) -> list[Granule]:
    """Along the (dataset_id, time_start, id) index from `lowest`: right when most granules there match."""
    statement = select(Granule).where(Granule.dataset_id == query.dataset_id, *query.exact())
    if lowest is not None:
        statement = statement.where(Granule.time_start >= lowest)
    return _first(session, statement, wanted)


def _first(session: Session, statement: Select[Granule], wanted: int) -> list[Granule]:
    return list(session.scalars(statement.order_by(Granule.time_start, Granule.id).limit(wanted)))


def _indexed(session: Session, query: _Query, wanted: int) -> list[Granule]:
    """Through the spatio-temporal index: granules started before the interval, then windows of start times."""
    facts = _facts(session, query.dataset_id)
    if facts.key is None:  # nothing of this dataset was ever indexed: no readable granule with a time
        return []
    granules: list[Granule] = []
    start, cursor_start = query.start, query.after[0] if query.after else None
    if start is not None and (cursor_start is None or cursor_start < start):
        granules = _started_before(session, query, facts.key, start, wanted)
    if len(granules) < wanted and query.bbox is None:
        granules += _in_time_order(session, query, query.lowest_start, wanted - len(granules))
    elif len(granules) < wanted:
        granules += _windows(session, query, facts, wanted - len(granules))
    return granules


@dataclass(frozen=True)
class _Facts:
    """What the windows need to know of the dataset, read in one statement."""

    key: int | None  # in the index
    first: dt.datetime | None  # earliest and latest start, never stale (two index look-ups)
    last: dt.datetime | None
    count: int  # from the summary, maybe stale: it only sizes the first window


def _facts(session: Session, dataset_id: str) -> _Facts:
    of_dataset = Granule.dataset_id == dataset_id
    first = select(func.min(Granule.time_start)).where(of_dataset).scalar_subquery()
    last = select(func.max(Granule.time_start)).where(of_dataset).scalar_subquery()
    count = select(Dataset.granule_count).where(Dataset.id == dataset_id).scalar_subquery()
    key, first_start, last_start, granules = session.execute(select(dataset_key(dataset_id), first, last, count)).one()
    return _Facts(key, first_start, last_start, granules or 0)


def _started_before(session: Session, query: _Query, key: int, start: dt.datetime, wanted: int) -> list[Granule]:
    """Granules that started before `start` and end after it: those running at that instant."""
    ids = candidate_ids(_dialect(session), key, query.parts, TimeRange(start_max=start, end_min=start))
    statement = select(Granule).where(Granule.id.in_(ids), Granule.time_start < start, *query.exact())
    return _first(session, statement, wanted)


def _windows(session: Session, query: _Query, facts: _Facts, wanted: int) -> list[Granule]:
    """Granules starting in successive windows of time, each sized from what the last one found."""
    if facts.first is None or facts.last is None or facts.key is None:
        return []
    low = max(query.lowest_start or facts.first, facts.first)  # no granule starts before the first
    high = min(query.end or facts.last, facts.last)
    width = _first_width(facts, wanted)
    granules: list[Granule] = []
    while low <= high and len(granules) < wanted:
        width = min(width, high - low + dt.timedelta(seconds=1))
        found = _window(session, query, facts.key, low, low + width, wanted - len(granules))
        granules += found
        low += width
        width *= _growth(len(found), wanted - len(granules))
    return granules


def _window(
    session: Session, query: _Query, key: int, low: dt.datetime, high: dt.datetime, wanted: int
) -> list[Granule]:
    """The first granules in order among those starting in [low, high)."""
    times = TimeRange(start_min=low, start_max=high)  # low is at or after the interval start
    ids = candidate_ids(_dialect(session), key, query.parts, times)
    window = (Granule.time_start >= low, Granule.time_start < high)
    # No condition on dataset_id: the candidates are all of the dataset, and its index must not tempt the planner.
    return _first(session, select(Granule).where(Granule.id.in_(ids), *window, *query.exact()), wanted)


def _first_width(facts: _Facts, wanted: int) -> dt.timedelta:
    """The window in which `wanted` granules start, on average over the dataset."""
    if not facts.count or facts.first is None or facts.last is None or facts.last <= facts.first:
        return FIRST_WINDOW
    return max((facts.last - facts.first) * (wanted / facts.count), dt.timedelta(minutes=1))


def _growth(found: int, still_wanted: int) -> float:
    """How much wider the next window is: enough for what is still wanted at the density just seen."""
    if found == 0:
        return MAX_GROWTH
    return min(MAX_GROWTH, max(2.0, 1.5 * still_wanted / found))


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _after(after: tuple[dt.datetime | None, int] | None) -> ColumnElement[bool]:
    """After the cursor's granule in (time_start, id) order."""
    if after is None:
        return true()
    start, granule_id = after
    return or_(Granule.time_start > start, and_(Granule.time_start == start, Granule.id > granule_id))


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
