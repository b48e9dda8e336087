"""Campaigns: the platform's overhead over bare Dask, and planning a million granules.

1. Overhead: 200 tiny NetCDF granules, a user processor from a workspace (a script doing about 0.2 s of CPU work per
   granule, then a time mean) run sandboxed by a full campaign: `submit_campaign`, the engine (planning, SQL,
   Dask, outputs registered in the catalog), `execute.run_task` (bubblewrap sandbox, output written once). Baseline:
   bare `client.map` of the same function, unsandboxed, over the same files, writing its outputs too, on the same
   LocalCluster (one worker process per core, one thread each, as the engine makes). Runs alternate; medians are
   compared. Goal: campaign <= 1.15 x baseline.
2. Planning: 1,000,000 synthetic granules in a SQLite catalog, bulk-inserted; a campaign over all of them, planned
   by the engine (the real engine thread and code path; a stand-in Dask client that never finishes a task, so that
   only planning runs). Time from submission until every task row is written, and the engine process's resident
   memory during planning (sampled from /proc). Goal: < 60 s, memory bounded.

    .venv/bin/python benchmarks/bench_campaign.py [--granules 200] [--seconds 0.2] [--repeat 2] [--plan 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from sqlalchemy import Engine, insert, select

from nephelae.accounts import Principal
from nephelae.accounts.projects import create_project
from nephelae.campaigns.cluster import Cluster, connect
from nephelae.campaigns.engine import CampaignEngine
from nephelae.campaigns.service import submit_campaign
from nephelae.campaigns.spec import validate_spec
from nephelae.catalog.datasets import add_dataset, get_dataset, refresh_summary
from nephelae.catalog.indexer import index_dataset
from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, session_factory, upgrade
from nephelae.db.models import Campaign, Granule

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support.postgres

ALICE = Principal(account_id=1, username="alice", role="user", projects=("bench",), address="127.0.0.1")
T0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
WORK = '''\
import numpy as np


def burn(seconds):
    """About `seconds` of CPU work (calibrated at import): the stand-in for a user's algorithm."""
    return _burn(int(seconds * LOOPS_PER_SECOND))


def _burn(loops):
    total = 0.0
    for number in range(loops):
        total += (number % 7) * 0.5
    return total


def _calibrate():
    import time
    began = time.perf_counter()
    _burn(200_000)
    return 200_000 / (time.perf_counter() - began)


LOOPS_PER_SECOND = _calibrate()


def process(inputs, parameters):
    burn(parameters["seconds"])
    sst = inputs["sst"]
    return sst.mean("time", keep_attrs=True).expand_dims(time=sst["time"][:1])
'''


def home(directory: Path, database_url: str | None = None) -> Settings:
    settings = load_settings(directory / "home", **({"database_url": database_url} if database_url else {}))
    prepare_home(settings)
    sql = make_engine(settings.database)
    upgrade(sql)
    sql.dispose()
    return settings


# 1. Overhead against bare client.map.


def tiny_granules(root: Path, count: int) -> list[Path]:
    """`count` small CF NetCDF files, one a day."""
    root.mkdir(parents=True)
    paths = []
    rng = np.random.default_rng(0)
    for number in range(count):
        day = T0 + dt.timedelta(days=number)
        data = xr.Dataset(
            {"sst": (("time", "lat", "lon"), 290 + rng.random((1, 20, 20)).astype("float32"), {"units": "K"})},
            coords={
                "time": [np.datetime64(day.replace(tzinfo=None), "ns")],
                "lat": ("lat", np.linspace(-10, 10, 20), {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", np.linspace(-10, 10, 20), {"units": "degrees_east", "standard_name": "longitude"}),
            },
        )
        path = root / f"sst-{day:%Y%m%d}.nc"
        data.to_netcdf(path)
        paths.append(path)
    return paths


def bare(path: str, out_dir: str, seconds: float, script: str) -> str:
    """The baseline task: the same function on the same file, unsandboxed, its output written."""
    namespace: dict[str, Any] = {}
    exec(compile(Path(script).read_text(), script, "exec"), namespace)  # the user's script, as-is
    with xr.open_dataset(path) as source:
        result = namespace["process"]({"sst": source}, {"seconds": seconds})
        out = Path(out_dir) / Path(path).name
        result.to_netcdf(out)
    return str(out)


def overhead(count: int, seconds: float, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        settings = home(Path(directory))
        archive = tiny_granules(Path(directory) / "archive", count)
        script = settings.workspaces_dir / "alice" / "work.py"
        script.parent.mkdir(parents=True)
        script.write_text(WORK)
        sql = make_engine(settings.database)
        with session_factory(sql)() as session:
            create_project(session, "bench", actor="bench")
            add_dataset(session, "tiny", str(archive[0].parent), "*.nc", projects=["bench"], actor="bench")
        index_dataset(sql, "tiny", workers=1)
        cluster = connect(settings)  # what the engine would make: one process per core, one thread each
        print(f"LocalCluster: {len(cluster.threads())} workers x 1 thread; {count} granules, {seconds} s of work each")
        bases, ours = [], []
        try:
            for run in range(repeat):
                bases.append(baseline_run(cluster, archive, Path(directory) / f"bare-{run}", seconds, str(script)))
                ours.append(campaign_run(settings, sql, cluster, run, seconds))
                print(f"  run {run + 1}: bare client.map {bases[-1]:.2f} s, campaign {ours[-1]:.2f} s", flush=True)
        finally:
            cluster.close()
            sql.dispose()
    base, mine = statistics.median(bases), statistics.median(ours)
    print(f"bare client.map: median {base:.2f} s of {', '.join(f'{b:.2f}' for b in bases)}")
    print(f"campaign (sandboxed, catalogued): median {mine:.2f} s of {', '.join(f'{o:.2f}' for o in ours)}")
    print(f"-> x{mine / base:.3f} the bare wall time (goal <= 1.15)")


def baseline_run(cluster: Cluster, archive: list[Path], out_dir: Path, seconds: float, script: str) -> float:
    out_dir.mkdir()
    client = cluster.client
    began = time.perf_counter()
    futures = client.map(bare, [str(p) for p in archive], out_dir=str(out_dir), seconds=seconds, script=script)
    client.gather(futures)
    return time.perf_counter() - began


def campaign_run(settings: Settings, sql: Engine, cluster: Cluster, run: int, seconds: float) -> float:
    from distributed import Client

    shared = Cluster(Client(cluster.local), None)  # the same worker processes as the baseline
    engine = CampaignEngine(settings, sql, connect=lambda _: shared)
    engine.start()
    document = {
        "name": f"bench-{run}",
        "inputs": {"sst": {"dataset": "tiny"}},
        "processor": "work.py:process",
        "parameters": {"seconds": seconds, "run": run},  # a new key per run: nothing is reused
        "output": {"dataset": f"alice-bench-{run}"},
    }
    try:
        began = time.perf_counter()
        with session_factory(sql)() as session:
            campaign_id = submit_campaign(session, settings, ALICE, validate_spec(document)).id
        status = wait_final(sql, campaign_id)
        elapsed = time.perf_counter() - began
    finally:
        engine.stop()
    if status != "completed":
        raise SystemExit(f"the benchmark campaign ended {status}")
    return elapsed


def wait_final(sql: Engine, campaign_id: int) -> str:
    while True:
        with sql.connect() as connection:
            status = connection.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        if status in ("completed", "completed_with_failures", "failed", "cancelled"):
            return str(status)
        time.sleep(0.05)


# 2. Planning a million granules.


class IdleClient:
    """A Dask client stand-in whose tasks never finish: the engine only plans (and keeps its window submitted)."""

    status = "running"

    def __init__(self) -> None:
        self.submitted = 0

    def nthreads(self) -> dict[str, int]:
        return {"tcp://stand-in:1": 2}

    def subscribe_topic(self, topic: str, handler: Any) -> None:
        pass

    def unsubscribe_topic(self, topic: str) -> None:
        pass

    def map(self, function: Any, *iterables: Any, **options: Any) -> list[Any]:
        self.submitted += len(options["key"])
        return [IdleFuture() for _ in options["key"]]

    def cancel(self, futures: Any, force: bool = False) -> None:
        pass

    def close(self, timeout: float = 0) -> None:
        pass


class IdleFuture:
    def add_done_callback(self, callback: Any) -> None:
        pass


def synthetic_catalog(sql: Engine, count: int) -> float:
    """`count` granules of ten minutes each, bulk-inserted (spatial index triggers included)."""
    with session_factory(sql)() as session:
        create_project(session, "bench", actor="bench")
        add_dataset(session, "swaths", "/archive/swaths", "**/*.nc", projects=["bench"], actor="bench")
    began = time.perf_counter()
    batch = 50_000
    for first in range(0, count, batch):
        rows = [_granule(number) for number in range(first, min(count, first + batch))]
        with sql.begin() as connection:
            connection.execute(insert(Granule), rows)
    with session_factory(sql)() as session:
        refresh_summary(session, get_dataset(session, "swaths"))
    return time.perf_counter() - began


def _granule(number: int) -> dict[str, Any]:
    start = T0 + dt.timedelta(minutes=10 * number)
    west = (number * 7.3) % 340 - 170
    return {
        "dataset_id": "swaths",
        "path": f"{start:%Y/%j}/swath-{number:07d}.nc",
        "size": 1_000_000 + number % 1000,
        "mtime_ns": number,
        "status": "ok",
        "time_start": start,
        "time_end": start + dt.timedelta(minutes=10),
        "west": west,
        "south": -60.0,
        "east": west + 20,
        "north": 60.0,
        "variables": [],
        "attributes": {},
        "indexed_at": T0,
    }


class RssSampler(threading.Thread):
    """Peak resident memory of this process, sampled from /proc every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.02):
            self.peak = max(self.peak, rss())


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def planning(count: int, backend: str) -> None:
    if backend == "sqlite":
        _planning(count, backend, None)
        return
    from tests.support.postgres import start_postgres_server

    server = start_postgres_server()
    try:
        _planning(count, backend, server.create_database("plan"))
    finally:
        server.stop()


def _planning(count: int, backend: str, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        settings = home(Path(directory), database_url)
        sql = make_engine(settings.database)
        inserted = synthetic_catalog(sql, count)
        print(f"[{backend}] {count:,} granules inserted in {inserted:.1f} s (spatial index included)")
        client = IdleClient()
        engine = CampaignEngine(settings, sql, connect=lambda _: Cluster(client))
        document = {
            "name": "plan-all",
            "inputs": {"sst": {"dataset": "swaths"}},
            "processor": "nephelae.processors:time_mean",
            "output": {"dataset": "alice-plan-all"},
        }
        with session_factory(sql)() as session:
            campaign_id = submit_campaign(session, settings, ALICE, validate_spec(document)).id
        before = rss()
        sampler = RssSampler()
        sampler.start()
        began = time.perf_counter()
        engine.start()
        try:
            tasks = wait_planned(sql, campaign_id)
            elapsed = time.perf_counter() - began
        finally:
            sampler.stopping.set()
            engine.stop()
            sql.dispose()
    rate = tasks / elapsed
    print(f"[{backend}] planned {tasks:,} tasks into campaign_tasks in {elapsed:.1f} s ({rate:,.0f} tasks/s)")
    print(
        f"[{backend}] engine process RSS {before / 2**20:.0f} MiB before, peak {sampler.peak / 2**20:.0f} MiB during "
        f"planning (+{(sampler.peak - before) / 2**20:.0f} MiB); {client.submitted} tasks submitted meanwhile"
    )
    print(f"-> {'met' if elapsed < 60 else 'MISSED'}: goal < 60 s")


def wait_planned(sql: Engine, campaign_id: int) -> int:
    while True:
        with sql.connect() as connection:
            row = connection.execute(
                select(Campaign.planning_finished, Campaign.task_count).where(Campaign.id == campaign_id)
            ).one()
        if row[0]:
            return int(row[1])
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--granules", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--plan", type=int, default=1_000_000)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-planning", action="store_true")
    parser.add_argument("--plan-backend", choices=["sqlite", "postgresql", "both"], default="both")
    arguments = parser.parse_args()
    os.environ.pop("NEPHELAE_HOME", None)
    if not arguments.skip_overhead:
        overhead(arguments.granules, arguments.seconds, arguments.repeat)
    if not arguments.skip_planning:
        for backend in ("sqlite", "postgresql"):
            if arguments.plan_backend in (backend, "both"):
                planning(arguments.plan, backend)


if __name__ == "__main__":
    main()
