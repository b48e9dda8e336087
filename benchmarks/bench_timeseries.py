"""Area-mean time series over a year of daily global L4 files, and the memory of a subset.

1. Speed: 365 daily global 0.25 degree GHRSST L4 files (the demo's L4 generator, one file a day, cached between
   runs), area mean of analysed_sst over a 60 x 40 degree box. Baseline: the plain script, on the same files,
   `xr.open_mfdataset(files).sel(lat=..., lon=...)` then `.weighted(cos(lat)).mean(("lat", "lon"))`, computed.
   Ours: the analysis service as the API calls it (catalog query, size estimate, each granule's slab read and
   reduced in worker processes, JSON rendered). Alternated, medians compared; the numbers are checked equal.
   Goal: at least 2x.
2. Memory: `subset` of the year for a small and a large box, each in a fresh process, written to NetCDF: growth of
   the process's peak resident set against the size of the output (uncompressed) and of the archive.

    .venv/bin/python benchmarks/bench_timeseries.py [--days 365] [--repeat 3] [--cache DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, session_factory, upgrade
from nephelae.demo import products
from nephelae.demo.archive import _write_atomically, l4_filename
from nephelae.demo.fields import make_earth, sst_analysis

DATASET = "bench-l4"
BOX = (-60.0, -20.0, 0.0, 20.0)  # 60 x 40 degrees of the tropical Atlantic
SMALL_BOX, LARGE_BOX = (-30.0, 0.0, -20.0, 10.0), (-60.0, -20.0, 0.0, 20.0)
START = dt.date(2020, 1, 1)


def build_archive(root: Path, days: int) -> list[Path]:
    """One demo L4 file a day (only the L4 product of `build_demo_archive`); files already there are kept."""
    paths = [root / l4_filename(START + dt.timedelta(days=n)) for n in range(days)]
    missing = [path for path in paths if not path.exists()]
    if missing:
        began, earth = time.perf_counter(), make_earth(42)
        for n, path in enumerate(paths):
            if path.exists():
                continue
            day = START + dt.timedelta(days=n)
            dataset, encoding = products.l4_dataset(sst_analysis(earth, day), earth.grid, day, 42)
            _write_atomically(dataset, encoding, path)
        print(f"generated {len(missing)} L4 files in {time.perf_counter() - began:.0f} s")
    megabytes = sum(path.stat().st_size for path in paths) / 1e6
    print(f"archive: {len(paths)} daily global 0.25 degree L4 files, {megabytes:.0f} MB on disk")
    return paths


def catalog(root: Path, work: Path) -> Settings:
    from nephelae.catalog.datasets import add_dataset
    from nephelae.catalog.indexer import index_dataset

    settings = load_settings(work / "home", database_url=f"sqlite:///{work / 'catalog.db'}")
    prepare_home(settings)
    engine = make_engine(settings.database)
    upgrade(engine)
    with session_factory(engine)() as session:
        add_dataset(session, DATASET, str(root), "*.nc", actor="bench")
    index_dataset(engine, DATASET)
    engine.dispose()
    return settings


def baseline(paths: list[Path]) -> xr.DataArray:
    """The plain script a scientist would write."""
    west, south, east, north = BOX
    ds = xr.open_mfdataset(paths)
    box = ds["analysed_sst"].sel(lat=slice(south, north), lon=slice(west, east))
    weights = xr.DataArray(np.cos(np.deg2rad(box["lat"])))
    return box.weighted(weights).mean(("lat", "lon")).compute()


def ours(settings: Settings) -> list[float]:
    from nephelae.analysis.request import build_request
    from nephelae.analysis.service import analyse

    engine = make_engine(settings.database)
    request = build_request("timeseries", DATASET, ["analysed_sst"], bbox=",".join(map(str, BOX)))
    with session_factory(engine)() as session:
        rendered = analyse(session, None, settings, request, "json")
    engine.dispose()
    return [point["value"] for point in json.loads(rendered.content or b"")["points"]]


def speed(paths: list[Path], settings: Settings, repeat: int) -> None:
    began = time.perf_counter()
    first = ours(settings)
    print(f"ours, first call (reduced inline while the worker processes start): {time.perf_counter() - began:.2f} s")
    theirs_times, our_times = [], []
    for _ in range(repeat):
        began = time.perf_counter()
        reference = baseline(paths)
        theirs_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        values = ours(settings)
        our_times.append(time.perf_counter() - began)
    theirs, mine = statistics.median(theirs_times), statistics.median(our_times)
    print(f"baseline open_mfdataset(...).sel(...).weighted(...).mean(): median {theirs:.2f} s of {_runs(theirs_times)}")
    print(f"analysis service (timeseries, JSON), {os.cpu_count()} cores: median {mine:.2f} s of {_runs(our_times)}")
    # The plain script sums in float32 (the decoded dtype); ours in float64: they agree to float32 precision.
    np.testing.assert_allclose(values, reference.values, rtol=1e-5)
    assert values == first
    print(f"same numbers (rtol 1e-5): yes; -> x{theirs / mine:.2f} faster (goal >= 2)", flush=True)


def memory_child(settings_home: str, database: str, box: str) -> None:
    """In a fresh process: subset the year to NetCDF; print peak RSS growth and the output's size."""
    from nephelae.analysis.request import build_request
    from nephelae.analysis.service import analyse

    settings = load_settings(Path(settings_home), database_url=database)
    engine = make_engine(settings.database)
    request = build_request("subset", DATASET, ["analysed_sst"], bbox=box)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with session_factory(engine)() as session:
        rendered = analyse(session, None, settings, request, "netcdf")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert rendered.path is not None
    with xr.open_dataset(rendered.path) as result:
        output = result["analysed_sst"].size * 4  # float32 once decoded; int16 packed on disk
    print(json.dumps({"grown_kib": peak - before, "output_bytes": output, "file_bytes": rendered.path.stat().st_size}))
    rendered.path.unlink()


def memory(settings: Settings, days: int) -> None:
    archive_bytes = days * 720 * 1440 * 4 * 4  # four float32 variables once decoded
    for name, box in (("small", SMALL_BOX), ("large", LARGE_BOX)):
        text = ",".join(map(str, box))
        child = [sys.executable, __file__, f"--memory-child={settings.home}|{settings.database}|{text}"]
        result = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
        grown = result["grown_kib"] / 1024
        output = result["output_bytes"] / 2**20
        print(
            f"subset {name} box {text} x {days} days: output {output:.1f} MiB decoded "
            f"({result['file_bytes'] / 2**20:.1f} MiB file), peak RSS growth {grown:.0f} MiB; "
            f"archive decoded {archive_bytes / 2**30:.1f} GiB"
        )


def _runs(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "nephelae-bench-l4")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)  # HOME|DATABASE|BOX
    arguments = parser.parse_args()
    if arguments.memory_child:
        memory_child(*arguments.memory_child.split("|"))
        return 0
    paths = build_archive(arguments.cache / f"{arguments.days}-days", arguments.days)
    with tempfile.TemporaryDirectory() as work:
        settings = catalog(paths[0].parent, Path(work))
        speed(paths, settings, arguments.repeat)
        memory(settings, arguments.days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
