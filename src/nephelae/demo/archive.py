"""The demo archive: synthetic but realistic GHRSST L4 and L2P SST and surface meteorology, as NetCDF-4 files.

The files follow CF-1.8, ACDD-1.3 and GHRSST GDS 2.0 (see `products`), so the catalog, the toolbox and campaigns
meet the shapes of real archives, including swaths that cross the antimeridian and passes over the poles. The build
is seeded and idempotent: the same seed gives the same values, and a file already in place is kept.

Layout under the root: `<dataset>/YYYY/DDD/<GDS 2.0 name>.nc` for the SST datasets, `<dataset>/YYYY/<name>.nc` for
the meteorology.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import xarray as xr

from nephelae.demo import products, swath, weather
from nephelae.demo.fields import Earth, SstAnalysis, make_earth, sst_analysis
from nephelae.demo.products import Encoding, Product

GRANULES_PER_DAY = 5
PATTERN = "**/*.nc"
TEMPORARY_SUFFIX = ".tmp"
PRODUCTS = (products.L4, products.L2P, products.MET)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoDataset:
    """One generated dataset, as the catalog needs it to register it."""

    id: str
    title: str
    description: str
    root: Path
    pattern: str
    variables: tuple[str, ...]
    files: int


@dataclass(frozen=True)
class _Day:
    """What every file of one day is made from."""

    seed: int
    day: dt.date
    earth: Earth
    analysis: SstAnalysis


@dataclass(frozen=True)
class _File:
    product: Product
    path: Path
    make: Callable[[_Day], tuple[xr.Dataset, Encoding]]


def build_demo_archive(
    root: Path,
    *,
    start: dt.date = dt.date(2020, 1, 1),
    days: int = 60,
    seed: int = 42,
    progress: Progress | None = None,
) -> list[DemoDataset]:
    """Write the demo datasets (L4 SST, L2P SST, surface meteorology) under `root` and describe them.

    A file already under its final name is kept: files are written under a temporary name and renamed into place,
    so such a file is complete, and re-running is quick and resumes an interrupted build. `progress(dataset, done,
    total)` is called after each file, written or kept, with counts over the whole build.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    plan = {day: _day_files(root, seed, day) for day in (start + dt.timedelta(days=n) for n in range(days))}
    _remove_temporaries(root)
    earth: Earth | None = None
    with _Writer(progress, total=sum(len(files) for files in plan.values())) as writer:
        for day, files in plan.items():
            missing = [file for file in files if not file.path.exists()]
            if missing:
                earth = earth or make_earth(seed)  # the static fields, built only when something is to be written
                context = _Day(seed, day, earth, sst_analysis(earth, day))
            for file in files:
                writer.put(file, file.make(context) if file in missing else None)
    counts = {product: sum(f.product == product for fs in plan.values() for f in fs) for product in PRODUCTS}
    return [_describe(root, product, count) for product, count in counts.items()]


class _Writer:
    """Writes files on one background thread, so that computing the next fields overlaps compressing the last ones
    (netCDF4 releases the GIL in the C library; a single thread keeps HDF5 calls serial). Progress is reported
    from the calling thread, in plan order."""

    def __init__(self, progress: Progress | None, total: int, depth: int = 4) -> None:
        self._progress, self._total, self._depth, self._done = progress, total, depth, 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-archive-writer")
        self._queue: deque[tuple[_File, Future[None] | None]] = deque()

    def put(self, file: _File, content: tuple[xr.Dataset, Encoding] | None) -> None:
        """Queue `content` for writing to the file, or with None count the file as already there."""
        future = None if content is None else self._pool.submit(_write_atomically, *content, file.path)
        self._queue.append((file, future))
        while self._queue and (len(self._queue) > self._depth or _finished(self._queue[0][1])):
            self._report(*self._queue.popleft())

    def _report(self, file: _File, future: Future[None] | None) -> None:
        if future is not None:
            future.result()  # waits, and raises the writing error if any
        self._done += 1
        if self._progress is not None:
            self._progress(file.product.id, self._done, self._total)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            while self._queue and kind is None:
                self._report(*self._queue.popleft())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _finished(future: Future[None] | None) -> bool:
    return future is None or future.done()


def l4_filename(day: dt.date) -> str:
    """GDS 2.0 name of the L4 file of a day."""
    return f"{day:%Y%m%d}120000-NEPHELAE-L4_GHRSST-SSTfnd-DEMO-GLOB-v02.0-fv01.0.nc"


def l2p_filename(start: dt.datetime) -> str:
    """GDS 2.0 name of an L2P granule starting at `start`."""
    return f"{start:%Y%m%d%H%M%S}-NEPHELAE-L2P_GHRSST-SSTskin-DEMOSAT-v02.0-fv01.0.nc"


def met_filename(day: dt.date) -> str:
    """Name of the surface meteorology file of a day."""
    return f"{day:%Y%m%d}120000-NEPHELAE-L4-SURFACE_MET-DEMO-GLOB-v01.0.nc"


def _describe(root: Path, product: Product, files: int) -> DemoDataset:
    return DemoDataset(product.id, product.title, product.summary, root / product.id, PATTERN, product.variables, files)


def _day_files(root: Path, seed: int, day: dt.date) -> list[_File]:
    """The files of one day, in the order they are written."""
    sst_dir = Path(f"{day:%Y}", f"{day:%j}")
    files = [_File(products.L4, root / products.L4.id / sst_dir / l4_filename(day), _l4)]
    for segment in swath.day_segments(seed, day, GRANULES_PER_DAY):
        path = root / products.L2P.id / sst_dir / l2p_filename(swath.segment_start(segment))
        files.append(_File(products.L2P, path, partial(_l2p, segment=segment)))
    files.append(_File(products.MET, root / products.MET.id / f"{day:%Y}" / met_filename(day), _met))
    return files


def _l4(context: _Day) -> tuple[xr.Dataset, Encoding]:
    return products.l4_dataset(context.analysis, context.earth.grid, context.day, context.seed)


def _l2p(context: _Day, segment: int) -> tuple[xr.Dataset, Encoding]:
    return products.l2p_dataset(swath.swath(context.earth, context.analysis, segment), context.seed)


def _met(context: _Day) -> tuple[xr.Dataset, Encoding]:
    fields = weather.surface_weather(context.earth, context.analysis, context.day)
    return products.met_dataset(fields, context.day, context.seed)


def _remove_temporaries(root: Path) -> None:
    """Leftovers of an interrupted build: never complete, never under a final name."""
    for product in PRODUCTS:
        for leftover in (root / product.id).glob(f"**/.*{TEMPORARY_SUFFIX}"):
            leftover.unlink(missing_ok=True)


def _write_atomically(dataset: xr.Dataset, encoding: Encoding, path: Path) -> None:
    """Write under a temporary name in the same directory, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")
    try:
        dataset.to_netcdf(temporary, format="NETCDF4", engine="netcdf4", encoding=encoding)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
