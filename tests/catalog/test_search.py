"""Search through the spatio-temporal index, checked against a brute-force filter over random granules.

Several hundred seeded random granules (instants, swaths, daily grids, two-week composites, antimeridian crossers,
unreadable files) in two datasets; random boxes (crossing too) and intervals (open, closed, instants). Every page in
turn, cursor to cursor, must give exactly the brute-force answer in (time_start, id) order, on both backends.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from nephelae.catalog.datasets import add_dataset, get_dataset, refresh_summary
from nephelae.catalog.query import BBox, Interval
from nephelae.catalog.search import Page, search_granules, search_granules_by_scan
from nephelae.db import session_factory
from nephelae.db.models import Granule

T0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
DAYS = 40
DATASETS = ("swaths", "grids")  # swaths: refreshed summary; grids: none (the search must not need it)


@dataclass(frozen=True)
class Row:
    id: int
    dataset_id: str
    ok: bool
    start: dt.datetime
    end: dt.datetime
    box: tuple[float, float, float, float]


def _moment(rng: random.Random) -> dt.datetime:
    return T0 + dt.timedelta(seconds=rng.randrange(DAYS * 86400))


def _box(rng: random.Random) -> tuple[float, float, float, float]:
    """Mostly swath-sized boxes, some crossing the antimeridian, some global, some points."""
    kind = rng.random()
    if kind < 0.1:
        return (-180.0, -90.0, 180.0, 90.0)
    if kind < 0.15:
        lon, lat = rng.uniform(-180, 180), rng.uniform(-90, 90)
        return (lon, lat, lon, lat)
    south = rng.uniform(-90, 80)
    north = min(90.0, south + rng.uniform(0, 40))
    if kind < 0.3:  # crossing: west in the east, east in the west
        return (rng.uniform(150, 180), south, rng.uniform(-180, -150), north)
    west = rng.uniform(-180, 170)
    return (west, south, min(180.0, west + rng.uniform(0, 60)), north)


def _granule(rng: random.Random, dataset_id: str, number: int) -> dict[str, object]:
    start = _moment(rng) if rng.random() > 0.1 else T0 + dt.timedelta(days=rng.randrange(DAYS))  # ties too
    duration = rng.choice([dt.timedelta(0), dt.timedelta(minutes=10), dt.timedelta(days=1), dt.timedelta(days=14)])
    west, south, east, north = _box(rng)
    fields: dict[str, object] = {"dataset_id": dataset_id, "path": f"{number}.nc", "size": 1, "mtime_ns": 1}
    if rng.random() < 0.05:
        return fields | {"status": "unreadable", "reason": "broken"}
    box = {"west": west, "south": south, "east": east, "north": north}
    return fields | box | {"time_start": start, "time_end": start + duration, "variables": [], "attributes": {}}


@pytest.fixture
def catalog(engine: Engine) -> Iterator[tuple[Session, list[Row]]]:
    rng = random.Random(20201)
    sessions = session_factory(engine)
    with sessions() as session:
        for dataset_id in DATASETS:
            add_dataset(session, dataset_id, "/archive", "**/*.nc")
        for dataset_id, count in zip(DATASETS, (400, 200), strict=True):
            session.add_all(Granule(**_granule(rng, dataset_id, n)) for n in range(count))  # type: ignore[arg-type]
        session.commit()
        refresh_summary(session, get_dataset(session, "swaths"))
        rows = [
            Row(g.id, g.dataset_id, g.status == "ok", g.time_start, g.time_end, (g.west, g.south, g.east, g.north))  # type: ignore[arg-type]
            for g in session.scalars(select(Granule))
        ]
        yield session, rows


def _longitudes(west: float, east: float) -> list[tuple[float, float]]:
    return [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]


def _meets(row: Row, bbox: BBox | None) -> bool:
    if bbox is None:
        return True
    west, south, east, north = row.box
    if south > bbox.north or north < bbox.south:
        return False
    pairs = ((a, b) for a in _longitudes(west, east) for b in _longitudes(bbox.west, bbox.east))
    return any(a[0] <= b[1] and a[1] >= b[0] for a, b in pairs)


def _during(row: Row, interval: Interval | None) -> bool:
    if interval is None:
        return True
    return (interval.start is None or row.end >= interval.start) and (interval.end is None or row.start <= interval.end)


def brute_force(rows: list[Row], dataset_id: str, bbox: BBox | None, interval: Interval | None) -> list[int]:
    found = [r for r in rows if r.dataset_id == dataset_id and r.ok and _meets(r, bbox) and _during(r, interval)]
    return [r.id for r in sorted(found, key=lambda r: (r.start, r.id))]


def random_bbox(rng: random.Random) -> BBox | None:
    if rng.random() < 0.15:
        return None
    west, south, east, north = _box(rng)
    if rng.random() < 0.3:  # small boxes: few matches among many granules
        east, north = (west + rng.uniform(0, 5) + 180) % 360 - 180, min(90.0, south + rng.uniform(0, 5))
    return BBox(west, south, east, north)


def random_interval(rng: random.Random) -> Interval | None:
    kind = rng.randrange(6)
    start, end = sorted([_moment(rng), _moment(rng)])
    start -= dt.timedelta(days=3)
    return [None, Interval(start, end), Interval(start, None), Interval(None, end), Interval(start, start)][kind % 5]


def all_pages(search: object, session: Session, dataset_id: str, limit: int, **query: object) -> list[int]:
    ids: list[int] = []
    cursor = None
    for _ in range(1000):
        page: Page = search(session, dataset_id, limit=limit, cursor=cursor, **query)  # type: ignore[operator]
        ids += [granule.id for granule in page.granules]
        assert len(page.granules) <= limit
        if page.next_cursor is None:
            return ids
        assert len(page.granules) == limit
        cursor = page.next_cursor
    raise AssertionError("paging never ends")


def test_search_matches_brute_force_page_by_page(catalog: tuple[Session, list[Row]]) -> None:
    session, rows = catalog
    rng = random.Random(7)
    for _ in range(80):
        dataset_id, bbox, interval = rng.choice(DATASETS), random_bbox(rng), random_interval(rng)
        expected = brute_force(rows, dataset_id, bbox, interval)
        limit = rng.choice([1, 3, 17, 100])
        found = all_pages(search_granules, session, dataset_id, limit, bbox=bbox, interval=interval)
        assert found == expected, (dataset_id, bbox, interval, limit)


def test_index_and_scan_agree(catalog: tuple[Session, list[Row]]) -> None:
    session, rows = catalog
    rng = random.Random(11)
    for _ in range(30):
        bbox, interval = random_bbox(rng), random_interval(rng)
        scanned = all_pages(search_granules_by_scan, session, "swaths", 25, bbox=bbox, interval=interval)
        assert scanned == brute_force(rows, "swaths", bbox, interval)
        assert all_pages(search_granules, session, "swaths", 25, bbox=bbox, interval=interval) == scanned


@pytest.mark.parametrize(
    ("bbox", "interval"),
    [
        (BBox(170, -10, -170, 10), None),  # crossing the antimeridian
        (BBox(179.5, -90, -179.5, 90), Interval(T0 + dt.timedelta(days=10), None)),
        (BBox(-180, -90, 180, 90), Interval(T0 + dt.timedelta(days=5, hours=3), T0 + dt.timedelta(days=5, hours=3))),
        (None, Interval(None, T0 + dt.timedelta(days=2))),
        (BBox(-1, -1, 1, 1), Interval(T0 + dt.timedelta(days=DAYS + 30), None)),  # after everything
        (BBox(10, 10, 10, 10), Interval(T0 - dt.timedelta(days=30), T0 - dt.timedelta(days=1))),  # before everything
    ],
)
def test_edge_queries(catalog: tuple[Session, list[Row]], bbox: BBox | None, interval: Interval | None) -> None:
    session, rows = catalog
    for dataset_id in DATASETS:
        expected = brute_force(rows, dataset_id, bbox, interval)
        assert all_pages(search_granules, session, dataset_id, 7, bbox=bbox, interval=interval) == expected


def test_unknown_or_unindexed_dataset_finds_nothing(catalog: tuple[Session, list[Row]]) -> None:
    session, _ = catalog
    page = search_granules(session, "nothing-here", bbox=BBox(-10, -10, 10, 10), interval=Interval(T0, None))
    assert page == Page(granules=[], next_cursor=None)
