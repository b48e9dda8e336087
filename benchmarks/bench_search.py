"""Search among 1,000,000 granules: bbox + time queries through the spatial index, on SQLite and PostgreSQL.

Synthetic catalog over ten years: three L2P datasets of 10-minute swath segments (boxes of ~20 x 36 degrees that
widen toward the poles, antimeridian crossers included), three daily global L4 grids, one small regional daily
dataset (the Black Sea). Random queries (several box sizes, crossing ones too; instants, days, months, years,
open-ended intervals, none) pick a dataset at random, limit 100. Baseline: the same queries by the plain-SQL scan
(`search_granules_by_scan`), the search before the index, on a subset of the queries (it takes seconds on some).

    .venv/bin/python benchmarks/bench_search.py [--granules 1000000] [--queries 500] [--baseline 100]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support.postgres

from nephelae.catalog.datasets import add_dataset, get_dataset, refresh_summary
from nephelae.catalog.query import BBox, Interval
from nephelae.catalog.search import Page, search_granules, search_granules_by_scan
from nephelae.db import make_engine, session_factory, upgrade

START = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
YEARS = 10
SEGMENT = dt.timedelta(minutes=10)
ORBIT_MINUTES = 101.0
COLUMNS = "dataset_id, path, size, mtime_ns, status, time_start, time_end, west, south, east, north"
COLUMNS += ", variables, attributes, indexed_at"


@dataclass(frozen=True)
class SyntheticDataset:
    id: str
    kind: str  # l2p | l4 | regional
    years: float
    phase: float = 0.0  # orbit phase offset (l2p)


DATASETS = (
    SyntheticDataset("l2p-metop", "l2p", 10.0, 0.0),
    SyntheticDataset("l2p-viirs", "l2p", 6.0, 0.37),
    SyntheticDataset("l2p-modis", "l2p", 3.0, 0.71),
    SyntheticDataset("l4-ostia", "l4", 10.0),
    SyntheticDataset("l4-mur", "l4", 10.0),
    SyntheticDataset("l4-avhrr", "l4", 10.0),
    SyntheticDataset("blacksea-l4", "regional", 1.0),
)


def swath_boxes(dataset: SyntheticDataset, count: int) -> Iterator[tuple[dt.datetime, dt.datetime, tuple[float, ...]]]:
    """10-minute segments of a sun-synchronous orbit: latitude follows the orbit, longitude drifts with the Earth."""
    minutes = np.arange(count) * 10.0
    phase = 2 * np.pi * (minutes / ORBIT_MINUTES + dataset.phase)
    lat_a, lat_b = 81 * np.sin(phase), 81 * np.sin(phase + 2 * np.pi * 10 / ORBIT_MINUTES)
    south = np.clip(np.minimum(lat_a, lat_b) - 9, -90, 90)
    north = np.clip(np.maximum(lat_a, lat_b) + 9, -90, 90)
    centre = (dataset.phase * 360 - 360 * minutes / 1436.0 + 180 * (np.cos(phase) < 0)) % 360 - 180
    half = np.minimum(180.0, 10 / np.maximum(np.cos(np.radians(np.maximum(np.abs(south), np.abs(north)))), 0.05))
    west, east = (centre - half + 180) % 360 - 180, (centre + half + 180) % 360 - 180
    wide = half >= 180
    west[wide], east[wide] = -180.0, 180.0
    for n in range(count):
        start = START + dt.timedelta(minutes=float(minutes[n]))
        yield start, start + SEGMENT - dt.timedelta(seconds=1), (west[n], south[n], east[n], north[n])


def daily_boxes(count: int, box: tuple[float, ...]) -> Iterator[tuple[dt.datetime, dt.datetime, tuple[float, ...]]]:
    for day in range(count):
        start = START + dt.timedelta(days=day)
        yield start, start + dt.timedelta(days=1), box


def plan(total: int) -> list[tuple[SyntheticDataset, int]]:
    """How many granules each dataset gets: the L2P ones fill up to `total`, by their years."""
    counts = {"l4": int(YEARS * 365.25), "regional": 365}
    fixed = sum(counts[d.kind] for d in DATASETS if d.kind != "l2p")
    l2p_years = sum(d.years for d in DATASETS if d.kind == "l2p")
    return [(d, counts[d.kind] if d.kind != "l2p" else int((total - fixed) * d.years / l2p_years)) for d in DATASETS]


def rows_of(dataset: SyntheticDataset, count: int) -> Iterator[tuple[object, ...]]:
    if dataset.kind == "l2p":
        boxes = swath_boxes(dataset, count)
    else:
        boxes = daily_boxes(count, (-180.0, -90.0, 180.0, 90.0) if dataset.kind == "l4" else (27.0, 40.0, 42.0, 47.0))
    for n, (start, end, (west, south, east, north)) in enumerate(boxes):
        yield (
            dataset.id,
            f"{start:%Y/%j}/{n}.nc",
            1000,
            0,
            "ok",
            start,
            end,
            west,
            south,
            east,
            north,
            "[]",
            "{}",
            START,
        )


def load_sqlite(engine: Engine, counts: list[tuple[SyntheticDataset, int]]) -> None:
    """executemany on the raw sqlite3 connection, timestamps in SQLAlchemy's storage format (UTC, naive)."""
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        for dataset, count in counts:
            rows = (
                tuple(
                    value.astimezone(dt.UTC).strftime(stamp) if isinstance(value, dt.datetime) else value
                    for value in row
                )
                for row in rows_of(dataset, count)
            )
            raw.executemany(f"INSERT INTO granules ({COLUMNS}) VALUES ({', '.join('?' * 14)})", rows)


def load_postgresql(engine: Engine, counts: list[tuple[SyntheticDataset, int]]) -> None:
    """COPY (the triggers fill the index row by row, as they would for the indexer)."""
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            for dataset, count in counts:
                with cursor.copy(f"COPY granules ({COLUMNS}) FROM STDIN") as copy:
                    for row in rows_of(dataset, count):
                        copy.write_row(row)
        connection.execute(text("ANALYZE"))


def build(engine: Engine, total: int, load: Callable[[Engine, list[tuple[SyntheticDataset, int]]], None]) -> float:
    upgrade(engine)
    counts = plan(total)
    with session_factory(engine)() as session:
        for dataset, _ in counts:
            add_dataset(session, dataset.id, f"/archive/{dataset.id}", "**/*.nc")
    began = time.perf_counter()
    load(engine, counts)
    seconds = time.perf_counter() - began
    with session_factory(engine)() as session:
        for dataset, _ in counts:
            refresh_summary(session, get_dataset(session, dataset.id))
    return seconds


def random_bbox(rng: random.Random) -> BBox | None:
    kind = rng.random()
    if kind < 0.1:
        return None
    if kind < 0.2:
        return BBox(-180, -90, 180, 90)
    if kind < 0.3:  # crossing the antimeridian
        south = rng.uniform(-60, 40)
        return BBox(rng.uniform(150, 178), south, rng.uniform(-178, -150), south + rng.uniform(2, 20))
    size = 30.0 if kind < 0.55 else 5.0 if kind < 0.85 else 0.5
    west, south = rng.uniform(-180, 180 - size), rng.uniform(-80, 80 - size)
    return BBox(west, south, west + size, south + size)


def random_interval(rng: random.Random) -> Interval | None:
    moment = START + dt.timedelta(days=rng.uniform(-200, YEARS * 365.25 + 100))
    kind = rng.random()
    spans = [(0.1, None), (0.3, dt.timedelta(0)), (0.5, dt.timedelta(days=1)), (0.7, dt.timedelta(days=30))]
    spans += [(0.8, dt.timedelta(days=365))]
    for threshold, span in spans:
        if kind < threshold:
            return None if span is None else Interval(moment, moment + span)
    return Interval(moment, None) if kind < 0.9 else Interval(None, moment)


def queries(count: int) -> list[tuple[str, BBox | None, Interval | None]]:
    rng = random.Random(1000)
    return [(rng.choice(DATASETS).id, random_bbox(rng), random_interval(rng)) for _ in range(count)]


def timings(
    engine: Engine, search: Callable[..., Page], chosen: list[tuple[str, BBox | None, Interval | None]]
) -> list[float]:
    sessions = session_factory(engine)
    milliseconds = []
    for dataset_id, bbox, interval in chosen:
        with sessions() as session:
            began = time.perf_counter()
            search(session, dataset_id, bbox=bbox, interval=interval, limit=100)
            milliseconds.append((time.perf_counter() - began) * 1000)
    return milliseconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def run_backend(name: str, engine: Engine, args: argparse.Namespace) -> dict[str, float]:
    load = load_sqlite if name == "sqlite" else load_postgresql
    seconds = build(engine, args.granules, load)
    print(f"[{name}] inserted {args.granules:,} granules with their index in {seconds:.1f} s", flush=True)
    chosen = queries(args.queries)
    timings(engine, search_granules, chosen[:20])  # warm the caches
    indexed = timings(engine, search_granules, chosen)
    baseline = timings(engine, search_granules_by_scan, chosen[: args.baseline])
    groups = {"all": [True] * len(chosen), "l2p": [q[0].startswith("l2p") for q in chosen]}
    groups["small"] = [q[0] == "blacksea-l4" for q in chosen]
    result = {}
    for group, selected in groups.items():
        mine = [ms for ms, keep in zip(indexed, selected, strict=True) if keep]
        same = [ms for ms, keep in zip(indexed, selected[: args.baseline], strict=False) if keep]
        scan = [ms for ms, keep in zip(baseline, selected, strict=False) if keep]
        result |= report(name, group, mine, same, scan)
    return result


def report(name: str, group: str, mine: list[float], same: list[float], scan: list[float]) -> dict[str, float]:
    """Print one line: the indexed search over the group's queries, then the scan and the index on the subset."""
    p50, p99 = percentile(mine, 50), percentile(mine, 99)
    line = (
        f"[{name}] {group:5} {len(mine):3} queries: index p50 {p50:6.2f} ms p99 {p99:6.2f} ms max {max(mine):6.1f} ms"
    )
    if scan:
        s50, s99, i50, i99 = percentile(scan, 50), percentile(scan, 99), percentile(same, 50), percentile(same, 99)
        line += f" | first {len(scan)}: scan p50 {s50:6.2f} p99 {s99:6.2f} ms, index p50 {i50:5.2f} p99 {i99:5.2f} ms"
        line += f" -> x{s50 / i50:.1f} (p50) x{s99 / i99:.1f} (p99)"
    print(line, flush=True)
    return {f"{group}_p50": p50, f"{group}_p99": p99}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--granules", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--baseline", type=int, default=100, help="queries also run by the plain-SQL scan")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    results = {}
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as directory:
            engine = make_engine(f"sqlite:///{directory}/bench.db")
            results["sqlite"] = run_backend("sqlite", engine, args)
            engine.dispose()
    if args.backend in ("postgresql", "both"):
        from tests.support.postgres import start_postgres_server

        server = start_postgres_server()
        try:
            engine = make_engine(server.create_database("bench"))
            results["postgresql"] = run_backend("postgresql", engine, args)
            engine.dispose()
        finally:
            server.stop()
    goal = all(r["all_p50"] < 20 and r["all_p99"] < 100 for r in results.values())
    print(f"goal p50 < 20 ms and p99 < 100 ms on every backend: {'met' if goal else 'NOT met'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
