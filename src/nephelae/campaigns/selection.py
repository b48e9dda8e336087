"""A campaign's inputs read from the catalog for planning: paged, ordered, resumable, and followed as they grow.

Each input is a `Selection` (dataset, time, box). Its granules come out as `GranuleRef`s in (time_start, id) order,
a page at a time on a fresh connection (no transaction stays open while the tasks are written), and only the columns
planning needs, so a million granules stream in bounded memory. Untimed granules come after the timed ones, for a
primary input grouped by granule (the only case that plans them).

`PlanFeed` cuts the selections into tasks with `plan_tasks` and says, after any task, where planning would resume:
the primary granule last planned (group by granule) or the period after the last one (group by day or month). The
engine stores that as the campaign's `plan_cursor` in the transaction that inserts the tasks, so that planning after
a crash starts exactly after the last task written. A standing campaign re-plans the time span of newly indexed
granules (`new_granules`) and keeps the tasks whose key is new.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, func, or_, select

from nephelae.campaigns.planning import PERIOD_FORMATS, GranuleRef, PlannedTask, PlanStats, plan_tasks
from nephelae.campaigns.spec import CampaignSpec
from nephelae.catalog.query import BBox, Interval
from nephelae.catalog.search import space_overlaps, time_overlaps
from nephelae.db.models import Dataset, Granule
from nephelae.errors import NotFound

PAGE = 5000
MARGIN = dt.timedelta(seconds=30)  # how far before the newest indexing time seen a standing campaign looks again
FOLLOW_PAGE = 10_000  # newly indexed granules looked at per query
_COLUMNS = (Granule.id, Granule.path, Granule.time_start, Granule.time_end, Granule.size, Granule.mtime_ns)
Position = tuple[dt.datetime | None, int]  # (time_start, id) of a granule; None: an untimed one
RowSelect = Select[int, str, dt.datetime | None, dt.datetime | None, int, int]


@dataclass(frozen=True)
class Selection:
    """One input of a campaign: the granules of `dataset` (under `root`) in `interval` and `bbox`."""

    alias: str
    dataset: str
    root: str
    interval: Interval | None
    bbox: BBox | None


@dataclass(frozen=True)
class Bounds:
    """Narrower limits on a selection, for resuming and following (None: no limit)."""

    after: tuple[dt.datetime | None, int] | None = None  # after this (time_start, id); time None: untimed phase
    starts_from: dt.datetime | None = None  # time_start >= this
    starts_before: dt.datetime | None = None  # time_start < this
    ends_from: dt.datetime | None = None  # the end (or the instant) >= this
    untimed: bool = False  # also the granules without time, after the timed ones


def selections(engine: Engine, spec: CampaignSpec) -> list[Selection]:
    """The spec's inputs, with their datasets' roots; the primary first."""
    with engine.connect() as connection:
        roots = dict(connection.execute(select(Dataset.id, Dataset.root).where(Dataset.id.in_(spec.datasets))).all())
    found = []
    for alias, item in spec.inputs.items():
        if item.dataset not in roots:
            raise NotFound(f"input {alias!r}: dataset {item.dataset!r} no longer exists")
        found.append(Selection(alias, item.dataset, roots[item.dataset], item.interval, item.box))
    return found


def location(root: str, path: str) -> str:
    """The absolute location of a granule: its path joined to the dataset root (a directory or URL)."""
    if "://" in root and not root.startswith("file://"):
        return f"{root.rstrip('/')}/{path}"
    return os.path.join(root.removeprefix("file://"), path)  # noqa: PTH118  # a million times: str is faster


def granules(engine: Engine, selection: Selection, bounds: Bounds = Bounds()) -> Iterator[GranuleRef]:
    """The selection's readable granules within `bounds`, in (time_start, id) order, a page per query."""
    after = bounds.after
    if after is None or after[0] is not None:
        yield from _pages(engine, selection, lambda last: _timed(selection, bounds, last), after)
    if bounds.untimed:
        first = (None, after[1]) if after is not None and after[0] is None else (None, 0)
        yield from _pages(engine, selection, lambda last: _untimed(selection, last), first)


def _where(selection: Selection) -> list[ColumnElement[bool]]:
    return [
        Granule.dataset_id == selection.dataset,
        Granule.status == "ok",
        time_overlaps(selection.interval),
        space_overlaps(selection.bbox),
    ]


def _timed(selection: Selection, bounds: Bounds, after: Position | None) -> RowSelect:
    conditions = [*_where(selection), Granule.time_start.is_not(None)]
    if after is not None:
        start, granule_id = after
        # The plain range first: with only the OR, SQLite scans the index from the dataset's first granule.
        conditions += [Granule.time_start >= start, or_(Granule.time_start > start, Granule.id > granule_id)]
    if bounds.starts_from is not None:
        conditions.append(Granule.time_start >= bounds.starts_from)
    if bounds.starts_before is not None:
        conditions.append(Granule.time_start < bounds.starts_before)
    if bounds.ends_from is not None:
        conditions.append(func.coalesce(Granule.time_end, Granule.time_start) >= bounds.ends_from)
    return select(*_COLUMNS).where(*conditions).order_by(Granule.time_start, Granule.id)


def _untimed(selection: Selection, after: Position | None) -> RowSelect:
    last_id = after[1] if after is not None else 0
    where = [*_where(selection), Granule.time_start.is_(None), Granule.id > last_id]
    return select(*_COLUMNS).where(*where).order_by(Granule.id)


def _pages(
    engine: Engine, selection: Selection, query: Callable[[Position | None], RowSelect], after: Position | None
) -> Iterator[GranuleRef]:
    """Pages of `query(after)`, each after the last row of the one before."""
    while True:
        with engine.connect() as connection:
            rows = connection.execute(query(after).limit(PAGE)).all()
        prefix, dataset = location(selection.root, ""), selection.dataset  # the root and its separator
        for row in rows:
            yield GranuleRef(row[0], prefix + row[1], row[2], row[3], dataset, row[4], row[5])
        if len(rows) < PAGE:
            return
        after = (rows[-1][2], rows[-1][0])


class PlanFeed:
    """The tasks of a campaign, planned from the catalog from a resume cursor, a batch at a time."""

    def __init__(
        self, engine: Engine, spec: CampaignSpec, inputs: list[Selection], processor: str, cursor: Mapping[str, Any]
    ) -> None:
        self.spec = spec
        self.stats = PlanStats()
        streams = {item.alias: granules(engine, item, self._bounds(item, cursor)) for item in inputs}
        self._tasks = plan_tasks(
            streams, group_by=spec.group_by, processor=processor, parameters=spec.parameters, stats=self.stats
        )

    def _bounds(self, item: Selection, cursor: Mapping[str, Any]) -> Bounds:
        primary = item.alias == self.spec.primary
        if self.spec.group_by != "granule":
            period = cursor.get("period")
            return Bounds(starts_from=None if period is None else next_period(period, self.spec.group_by))
        if "id" not in cursor:
            return Bounds(untimed=primary)
        moment = None if cursor["time"] is None else dt.datetime.fromisoformat(cursor["time"])
        if primary:
            return Bounds(after=(moment, cursor["id"]), untimed=True)
        # Later primaries start no earlier than the last one: what ended before it cannot overlap them.
        return Bounds(ends_from=moment)

    def take(self, limit: int) -> list[PlannedTask]:
        """The next tasks, at most `limit`; an empty list when planning is done."""
        return list(islice(self._tasks, limit))

    def cursor(self, last: PlannedTask) -> dict[str, Any]:
        """Where planning resumes after `last`."""
        if self.spec.group_by != "granule":
            return {"period": last.label}
        granule = last.inputs[self.spec.primary][0]
        return {"time": granule.time_start.isoformat() if granule.time_start else None, "id": granule.id}


def next_period(label: str, group_by: str) -> dt.datetime:
    """The start (UTC) of the day or month after the one labelled `label` (2020-01-31, 2020-01)."""
    return period_after(dt.datetime.strptime(label, PERIOD_FORMATS[group_by]).replace(tzinfo=dt.UTC), group_by)


def period_start(moment: dt.datetime, group_by: str) -> dt.datetime:
    """The start of the UTC day or month holding `moment`."""
    day = moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if group_by == "day" else day.replace(day=1)


def period_after(moment: dt.datetime, group_by: str) -> dt.datetime:
    """The start of the UTC day or month after the one holding `moment`."""
    start = period_start(moment, group_by)
    if group_by == "day":
        return start + dt.timedelta(days=1)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


@dataclass(frozen=True)
class NewGranules:
    """A page of the primary input's granules in indexing order, and the time span of those not seen before."""

    indexed: dict[int, dt.datetime]  # granule id -> indexed_at, for the whole page
    cursor: tuple[dt.datetime, int]  # (indexed_at, id) of its last granule
    full: bool  # more may follow
    first_start: dt.datetime | None = None  # None: every granule of the page was seen before
    last_start: dt.datetime | None = None
    last_end: dt.datetime | None = None


def newest_indexing(engine: Engine, dataset_id: str) -> dt.datetime | None:
    """When the dataset's most recently indexed granule was indexed."""
    with engine.connect() as connection:
        return connection.scalar(select(func.max(Granule.indexed_at)).where(Granule.dataset_id == dataset_id))


def indexed_after(
    engine: Engine, primary: Selection, after: tuple[dt.datetime, int], seen: Mapping[int, dt.datetime]
) -> NewGranules | None:
    """The next page of timed granules of the primary selection indexed after `after`; `seen` ones add no span."""
    moment, last_id = after
    query = (
        select(Granule.id, Granule.time_start, Granule.time_end, Granule.indexed_at)
        .where(*_where(primary), Granule.time_start.is_not(None), Granule.indexed_at >= moment)
        .where(or_(Granule.indexed_at > moment, Granule.id > last_id))
        .order_by(Granule.indexed_at, Granule.id)
        .limit(FOLLOW_PAGE)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    if not rows:
        return None
    page = NewGranules({row[0]: row[3] for row in rows}, (rows[-1][3], rows[-1][0]), len(rows) == FOLLOW_PAGE)
    fresh = [(row[1], row[2] or row[1]) for row in rows if row[0] not in seen and row[1] is not None]
    if not fresh:
        return page
    starts = [start for start, _ in fresh]
    return replace(page, first_start=min(starts), last_start=max(starts), last_end=max(end for _, end in fresh))


def follow_feed(
    engine: Engine, spec: CampaignSpec, inputs: list[Selection], processor: str, new: NewGranules
) -> Iterator[PlannedTask]:
    """The tasks of the time span the new granules fall in (those already planned come again: filter by key)."""
    first, last, end = new.first_start, new.last_start, new.last_end
    if first is None or last is None or end is None:
        return iter(())
    streams = {}
    for item in inputs:
        if spec.group_by != "granule":
            bounds = Bounds(
                starts_from=period_start(first, spec.group_by), starts_before=period_after(last, spec.group_by)
            )
        elif item.alias == spec.primary:
            bounds = Bounds(starts_from=first, starts_before=last + dt.timedelta(microseconds=1))
        else:
            bounds = Bounds(ends_from=first, starts_before=end + dt.timedelta(microseconds=1))
        streams[item.alias] = granules(engine, item, bounds)
    return plan_tasks(streams, group_by=spec.group_by, processor=processor, parameters=spec.parameters)


@dataclass
class Follower:
    """What a standing campaign has seen of its primary input's indexing, and how it plans what comes next.

    Granules are committed a little after their indexing time, so each look starts `MARGIN` before the newest time
    seen, skipping the granules seen then (`recent`). It goes through what was indexed since a page at a time, and
    plans the time span of each page's new granules; tasks planned already come back too: the engine keeps those
    whose key is new. Memory stays bounded: a page of granules, a batch of tasks.
    """

    since: dt.datetime | None
    recent: dict[int, dt.datetime] = field(default_factory=dict)

    def start(self, engine: Engine, spec: CampaignSpec) -> None:
        """Before planning: what is indexed from now on, following will see."""
        if self.since is None:
            self.since = newest_indexing(engine, spec.inputs[spec.primary].dataset) or dt.datetime.now(dt.UTC)

    def look(self, engine: Engine, spec: CampaignSpec, processor: str, batch: int) -> Iterator[list[PlannedTask]]:
        """Batches of tasks for the granules indexed since the last look; `since` advances as pages are done."""
        inputs = selections(engine, spec)
        self.since = self.since or dt.datetime.now(dt.UTC)
        look_from = self.since - MARGIN
        self.recent = {granule: at for granule, at in self.recent.items() if at > look_from}
        after = (look_from, 0)
        while (page := indexed_after(engine, inputs[0], after, self.recent)) is not None:
            tasks = follow_feed(engine, spec, inputs, processor, page)
            while chunk := list(islice(tasks, batch)):
                yield chunk
            self.recent.update(page.indexed)
            self.since, after = max(self.since, page.cursor[0]), page.cursor
            if not page.full:
                return
