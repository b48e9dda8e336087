"""Indexing speed against a sequential xarray loop, and memory flat in the number of files.

1. Speed: the demo archive (30 days: 210 NetCDF-4 files of L4 grids, L2P swaths, meteorology). Baseline: a
   sequential loop that opens each file with `xr.open_dataset` and reads what the catalog keeps (time coverage,
   lat/lon min/max, variable names and attributes). Ours: `index_dataset` into a fresh SQLite catalog, default
   workers (one per core). Goal: at least 2x.
2. Memory: `index_dataset` over 2,000 and then 20,000 tiny NetCDF files (hard links to a few files made with
   netCDF4), each in a fresh process: growth of the indexing process's resident set (sampled from /proc) and the
   tracemalloc peak of its Python allocations. Goal: flat.

    .venv/bin/python benchmarks/bench_indexing.py [--days 30] [--repeat 3] [--small 2000] [--large 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr
from sqlalchemy import Engine

from nephelae.catalog.datasets import add_dataset
from nephelae.catalog.indexer import index_dataset
from nephelae.db import make_engine, session_factory, upgrade
from nephelae.demo.archive import build_demo_archive

TINY_VARIANTS = 5


def baseline_metadata(path: Path) -> dict[str, object]:
    """What the catalog needs of a file, the straightforward way: xarray, sequentially."""
    with xr.open_dataset(path) as dataset:
        lat, lon = dataset["lat"], dataset["lon"]
        return {
            "time": (dataset.attrs.get("time_coverage_start"), dataset.attrs.get("time_coverage_end")),
            "box": (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())),
            "variables": {name: dict(variable.attrs) for name, variable in dataset.data_vars.items()},
        }


def fresh_catalog(directory: Path, root: Path) -> tuple[Engine, str]:
    directory.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{directory / 'catalog.db'}")
    upgrade(engine)
    with session_factory(engine)() as session:
        add_dataset(session, "bench", str(root), "**/*.nc")
    return engine, "bench"


def speed(days: int, repeat: int) -> float:
    """Baseline and ours alternately, `repeat` times each (the machine may be shared): the medians are compared."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "archive"
        began = time.perf_counter()
        build_demo_archive(root, days=days)
        files = sorted(root.glob("**/*.nc"))
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(f"demo archive: {len(files)} files, {megabytes:.0f} MB, built in {time.perf_counter() - began:.0f} s")
        for path in files:  # both runs find the files in the page cache
            path.read_bytes()
        baselines, ours = [], []
        for run in range(repeat):
            began = time.perf_counter()
            for path in files:
                baseline_metadata(path)
            baselines.append(time.perf_counter() - began)
            engine, dataset_id = fresh_catalog(Path(directory) / f"run-{run}", root)
            report = index_dataset(engine, dataset_id)
            ours.append(report.seconds)
            again = index_dataset(engine, dataset_id)
            engine.dispose()
    baseline, indexing = statistics.median(baselines), statistics.median(ours)
    print(f"baseline, sequential xr.open_dataset loop: median {baseline:.2f} s of {_runs(baselines)}")
    print(f"index_dataset, {os.cpu_count()} workers: median {indexing:.2f} s of {_runs(ours)} ({report.added} added)")
    print(f"-> x{baseline / indexing:.2f} faster (goal >= 2)")
    print(f"index_dataset again, nothing changed: {again.seconds:.3f} s ({again.unchanged} unchanged)", flush=True)
    return baseline / indexing


def _runs(seconds: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in seconds)


def tiny_files(directory: Path, count: int) -> Path:
    """`count` tiny readable NetCDF files: a few made with netCDF4, the rest hard links, 500 per directory."""
    sources = directory / "sources"
    sources.mkdir()
    for variant in range(TINY_VARIANTS):
        with netCDF4.Dataset(sources / f"{variant}.nc", "w") as dataset:
            dataset.createDimension("lat", 2)
            dataset.createDimension("lon", 2)
            dataset.createVariable("lat", "f4", ("lat",))[:] = np.array([0.0, 1.0]) + variant
            dataset.createVariable("lon", "f4", ("lon",))[:] = np.array([10.0, 11.0]) + variant
            dataset.createVariable("sst", "f4", ("lat", "lon"))[:] = 290.0
            day = dt.datetime(2020, 1, 1 + variant)
            dataset.time_coverage_start = f"{day:%Y-%m-%dT%H:%M:%SZ}"
            dataset.time_coverage_end = f"{day + dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
    root = directory / "archive"
    for number in range(count):
        target = root / f"{number // 500:04d}" / f"{number}.nc"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(sources / f"{number % TINY_VARIANTS}.nc", target)
    return root


class RssSampler:
    """The resident set size of this process, sampled every 5 ms from /proc: its peak growth over the block."""

    def __init__(self) -> None:
        self.before = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def rss_kib() -> int:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss_kib())

    def __enter__(self) -> RssSampler:
        self.before = self.peak = self.rss_kib()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_kib(self) -> int:
        return self.peak - self.before


def memory_child(count: int) -> None:
    """Index `count` tiny files in this (fresh) process; print peak RSS growth and tracemalloc peak as JSON."""
    with tempfile.TemporaryDirectory() as directory:
        root = tiny_files(Path(directory), count)
        engine, dataset_id = fresh_catalog(Path(directory), root)
        with RssSampler() as rss:
            tracemalloc.start()
            report = index_dataset(engine, dataset_id)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    result = {"files": report.added, "seconds": report.seconds, "rss_kib": rss.growth_kib, "traced": peak}
    print(json.dumps(result))


def memory(counts: list[int]) -> list[dict[str, float]]:
    results = []
    for count in counts:
        child = [sys.executable, __file__, "--memory-child", str(count)]
        output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{result['files']:>7,} tiny files: {result['seconds']:.1f} s, peak RSS growth "
            f"{result['rss_kib'] / 1024:.1f} MiB, tracemalloc peak {result['traced'] / 2**20:.2f} MiB",
            flush=True,
        )
    small, large = results[0], results[-1]
    print(
        f"x{large['files'] / small['files']:.0f} files -> tracemalloc peak x{large['traced'] / small['traced']:.2f}, "
        f"RSS growth {small['rss_kib'] / 1024:.1f} -> {large['rss_kib'] / 1024:.1f} MiB"
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help="speed runs, baseline and ours alternately")
    parser.add_argument("--part", choices=["speed", "memory", "both"], default="both")
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    ratio = speed(args.days, args.repeat) if args.part != "memory" else 2.0
    results = memory([args.small, args.large]) if args.part != "speed" else [{"traced": 1.0}]
    flat = results[-1]["traced"] < 2 * results[0]["traced"]
    print(
        f"goals: speed x{ratio:.2f} >= 2: {'met' if ratio >= 2 else 'NOT met'}; "
        f"memory flat (tracemalloc peak < 2x for {args.large // args.small}x files): {'met' if flat else 'NOT met'}"
    )
    return 0 if ratio >= 2 and flat else 1


if __name__ == "__main__":
    sys.exit(main())
