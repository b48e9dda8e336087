"""Indexing a dataset: list its files, read the new and changed ones in parallel, forget the removed ones.

Built for archives of millions of files, on one machine or many:

- The listing is streamed (a `os.scandir` walk, or fsspec for URLs) and compared with the catalog a batch of paths
  at a time, so memory does not grow with the number of files. To find removed files without holding every path,
  each catalogued granule seen in the listing sets one bit in a bitmap over granule ids; at the end, the granules
  of the dataset whose bit is clear are deleted. One bit per id: 10 million granules in the catalog cost 1.25 MB.
- Metadata is read in worker processes (`read_granule_metadata`), several files per task to amortise the overhead.
  No file stops the run: a file the reader refuses is recorded `unreadable` with its reason, as is any other error
  on one file, and a worker that dies (a crash in a C library) is replaced; the files it may have been reading are
  read again one at a time, and the one that kills a worker again is recorded unreadable.
- Results are written in batches, one transaction each, so an interrupted run loses at most a batch, and the next
  run picks up from there (it is incremental: a file is read again only when its size or mtime changed). The
  spatio-temporal index follows in the same transactions (database triggers, see migration 0004).

Only files under the root are indexed: the walk does not follow directory symlinks, and a file symlink is followed
only when its target is inside the root. Hidden entries (dot files, dot directories) are skipped, as glob does.
A directory that matches the pattern and holds Zarr metadata is one granule (a Zarr store), not walked into.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import gc
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update

from nephelae.catalog.datasets import get_dataset, refresh_summary
from nephelae.catalog.metadata import GranuleMetadata
from nephelae.catalog.reader import UnreadableGranule, read_granule_metadata
from nephelae.catalog.stores import is_zarr_store, store_stat
from nephelae.db import session_factory
from nephelae.db.locks import exclusive
from nephelae.db.models import Granule
from nephelae.errors import InvalidInput, ServiceUnavailable

Progress = Callable[[str, int, int], None]

COMPARE_BATCH = 500  # listed files compared with the catalog per query
READ_CHUNK = 4  # files per worker task
WRITE_BATCH = 100  # granules written per transaction, at most (or what was read in WRITE_SECONDS)
WRITE_SECONDS = 2.0
SWEEP_BATCH = 1000  # granules checked per query when looking for removed files
_READ_COLUMNS = ("time_start", "time_end", "west", "south", "east", "north", "footprint")
CRASH_REASON = "the file crashed the reading process (a fault in the NetCDF/HDF5 libraries?)"


@dataclass
class IndexReport:
    """What an indexing run did. `added` and `updated` include the files found unreadable, also counted in
    `unreadable`; `unchanged` files were not read again."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    unreadable: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ListedFile:
    """A file found under the root: its path relative to the root ('/'-separated), size and mtime."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class _Work:
    """A file to read, and the granule it updates (None: a new file)."""

    file: ListedFile
    granule_id: int | None


@dataclass(frozen=True)
class _Outcome:
    work: _Work
    metadata: GranuleMetadata | None
    reason: str | None = None


def index_dataset(
    engine: Engine,
    dataset_id: str,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    allow_empty: bool = False,
) -> IndexReport:
    """Bring the catalog of `dataset_id` up to date with the files under its root, and refresh its summary.

    `workers` processes read the files (default: one per core). `progress(label, done, total)` is called as files
    are done; `total` counts the files listed so far, and grows until the listing is complete. A root that lists
    no file at all while the catalog has granules is refused unless `allow_empty` (an unmounted filesystem must
    not empty the catalog). One indexing of a dataset at a time: another one running raises Conflict.
    """
    began = time.perf_counter()
    sessions = session_factory(engine)
    with sessions() as session:
        dataset = get_dataset(session, dataset_id)
        root, pattern = dataset.root, dataset.pattern
    busy = f"dataset {dataset_id} is being indexed by another process; wait for it to finish, then run it again"
    with exclusive(engine, f"index:{dataset_id}", busy):
        with sessions() as session:
            highest = session.scalar(select(func.max(Granule.id))) or 0
        run = _Run(engine, dataset_id, root, highest, workers or os.cpu_count() or 1, progress)
        run.allow_empty = allow_empty or highest == 0
        report = run.execute(list_files(root, pattern))
        with sessions() as session:
            refresh_summary(session, get_dataset(session, dataset_id))
    report.seconds = time.perf_counter() - began
    return report


# Listing.


def list_files(root: str, pattern: str) -> Iterator[ListedFile]:
    """The files under `root` (a directory, a file:// URL or another fsspec URL) matching the glob `pattern`."""
    if root.startswith("file://"):
        root = root.removeprefix("file://")
    elif "://" in root:
        return _list_fsspec(root, pattern)
    if not Path(root).is_dir():
        raise InvalidInput(f"the dataset root {root} is not a directory; check the path given to `datasets add`")
    return _walk(os.path.realpath(root), _segments(pattern))


def _segments(pattern: str) -> tuple[str, ...]:
    segments = tuple(part for part in pattern.split("/") if part not in ("", "."))
    if not segments or ".." in segments:
        raise InvalidInput(f"pattern {pattern!r} must be a glob relative to the root, e.g. '**/*.nc'")
    return segments


def _walk(root: str, pattern: tuple[str, ...]) -> Iterator[ListedFile]:
    """Depth first with os.scandir; only the directories still to visit are kept, and only those that can match."""
    stack: list[tuple[str, ...]] = [()]
    while stack:
        parts = stack.pop()
        try:
            entries = os.scandir(Path(root, *parts))
        except OSError:
            continue  # vanished or unreadable directory: its files are simply not listed
        with entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                child = (*parts, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    if matches(child, pattern) and is_zarr_store(entry.path):
                        yield ListedFile("/".join(child), *store_stat(entry.path))
                    elif _could_match(child, pattern):
                        stack.append(child)
                elif matches(child, pattern) and (listed := _listed(root, entry, child)) is not None:
                    yield listed


def _listed(root: str, entry: os.DirEntry[str], parts: tuple[str, ...]) -> ListedFile | None:
    """The file, if it is a regular file inside the root (a symlink is followed, and must stay inside)."""
    try:
        if entry.is_symlink() and os.path.commonpath([root, os.path.realpath(entry.path)]) != root:
            return None
        info = entry.stat()
    except (OSError, ValueError):
        return None  # a dangling symlink, or a file removed meanwhile
    if not entry.is_file():
        return None
    return ListedFile("/".join(parts), info.st_size, info.st_mtime_ns)


def matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Glob matching by path segments: `*`, `?` and `[...]` within a segment, `**` for any number of segments."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(matches(parts[skip:], pattern[1:]) for skip in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and matches(parts[1:], pattern[1:])


def _could_match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether files below the directory `parts` may match: prunes the walk for patterns like `2020/*/*.nc`."""
    if not parts:
        return True
    if not pattern:
        return False
    if pattern[0] == "**":
        return True
    return fnmatch.fnmatchcase(parts[0], pattern[0]) and _could_match(parts[1:], pattern[1:])


def _list_fsspec(root: str, pattern: str) -> Iterator[ListedFile]:
    filesystem, base = _fsspec(root).core.url_to_fs(root)
    segments, base = _segments(pattern), base.rstrip("/")
    if not filesystem.isdir(base):  # an unreachable archive must not look like an emptied one
        raise InvalidInput(f"the dataset root {root} is not a directory (or cannot be reached)")
    for directory, _, files in filesystem.walk(base, detail=True):
        for name, info in files.items():
            relative = f"{directory}/{name}"[len(base) + 1 :]
            parts = tuple(relative.split("/"))
            if not any(part.startswith(".") for part in parts) and matches(parts, segments):
                yield ListedFile(relative, int(info.get("size") or 0), _mtime_ns(info))


def _fsspec(url: str) -> Any:
    """fsspec (it comes with dask), for roots that are URLs."""
    try:
        import fsspec  # type: ignore[import-untyped]
    except ImportError:
        raise InvalidInput(f"{url} is a URL: install fsspec to index it, or use a local path") from None
    return fsspec


def _mtime_ns(info: dict[str, Any]) -> int:
    """Modification time from an fsspec info dict, whose key and type vary with the filesystem."""
    for key in ("mtime", "LastModified", "last_modified", "created", "updated"):
        value = info.get(key)
        if isinstance(value, dt.datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, int | float):
            return int(value * 1e9)
    return 0


# Reading, in worker processes.


def read_chunk(root: str, chunk: list[_Work]) -> list[_Outcome]:
    """Read the metadata of a few files; never raises for one file (its outcome carries the reason)."""
    return [_read_one(root, work) for work in chunk]


def _read_one(root: str, work: _Work) -> _Outcome:
    try:
        return _Outcome(work, _read(root, work.file.path))
    except UnreadableGranule as error:
        return _Outcome(work, None, error.reason)
    except Exception as error:  # a reader bug on one file must not stop an indexing of millions
        return _Outcome(work, None, f"unexpected {type(error).__name__}: {error}")


def _read(root: str, path: str) -> GranuleMetadata:
    if "://" not in root or root.startswith("file://"):
        return read_granule_metadata(Path(root.removeprefix("file://"), *path.split("/")))
    return _read_remote(f"{root.rstrip('/')}/{path}")


def _read_remote(url: str) -> GranuleMetadata:
    """A file behind an fsspec URL: copied to a temporary file, since the reader wants a local path."""
    with tempfile.NamedTemporaryFile(suffix=PurePosixPath(url).suffix) as local:
        with _fsspec(url).open(url, "rb") as remote:
            while block := remote.read(1 << 22):
                local.write(block)
        local.flush()
        return read_granule_metadata(local.name)


# The run: compare, read, write, sweep.


class _Run:
    """One indexing run; its state is bounded by the batch sizes and the bitmap of seen granules."""

    def __init__(
        self, engine: Engine, dataset_id: str, root: str, highest: int, workers: int, progress: Progress | None
    ):
        self.engine, self.dataset_id, self.root, self.highest = engine, dataset_id, root, highest
        self.workers, self.progress = workers, progress
        self.report = IndexReport()
        self.seen = bytearray(highest // 8 + 1)  # bit i: granule id i is still listed
        self.pending: dict[Future[list[_Outcome]], list[_Work]] = {}
        self.written: list[_Outcome] = []
        self.last_write = time.monotonic()
        self.suspects: list[_Work] = []
        self.listed = self.done = 0
        self.allow_empty = False
        self.pool = _pool(workers)

    def execute(self, files: Iterable[ListedFile]) -> IndexReport:
        # The collector leaves what exists now alone until the end: a full collection here no longer walks a large
        # heap (xarray, SQLAlchemy) while the workers need the cores, nor touches pages shared with them by fork.
        gc.freeze()
        try:
            iterator = iter(files)
            while batch := list(islice(iterator, COMPARE_BATCH)):
                self.listed += len(batch)
                self._submit(self._compare(batch))
            self._tick()
            while self.pending:
                self._collect()
            self._write()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            gc.unfreeze()
        if self.listed == 0 and not self.allow_empty and self._has_granules():
            raise ServiceUnavailable(
                f"no file of dataset {self.dataset_id} was found under {self.root}, which the catalog says holds "
                "granules: is the archive mounted? If the files really were all removed, index again with "
                "--allow-empty"
            )
        self._sweep()
        return self.report

    def _has_granules(self) -> bool:
        query = select(Granule.id).where(Granule.dataset_id == self.dataset_id).limit(1)
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def _compare(self, batch: list[ListedFile]) -> list[_Work]:
        """The files of `batch` to read; the unchanged ones are counted and marked seen."""
        query = select(Granule.path, Granule.id, Granule.size, Granule.mtime_ns).where(
            Granule.dataset_id == self.dataset_id, Granule.path.in_([file.path for file in batch])
        )
        with self.engine.connect() as connection:
            known = {path: (granule_id, size, mtime) for path, granule_id, size, mtime in connection.execute(query)}
        work = []
        for file in batch:
            granule_id, size, mtime = known.get(file.path, (None, None, None))
            if granule_id is not None and granule_id <= self.highest:  # higher: written since the run began
                self.seen[granule_id >> 3] |= 1 << (granule_id & 7)
            if (size, mtime) == (file.size, file.mtime_ns):
                self.report.unchanged += 1
                self.done += 1
            else:
                work.append(_Work(file, granule_id))
        return work

    def _submit(self, work: list[_Work]) -> None:
        for start in range(0, len(work), READ_CHUNK):
            while len(self.pending) >= 2 * self.workers:
                self._collect()
            chunk = work[start : start + READ_CHUNK]
            self.pending[self.pool.submit(read_chunk, self.root, chunk)] = chunk
        self._tick()

    def _collect(self) -> None:
        """Wait for some reads to finish and keep their outcomes; after a worker died, recover."""
        finished, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        for future in finished:
            self._settle(future)
        if self.suspects:  # the pool is broken: the other reads in flight fail too (or had finished)
            for future in list(self.pending):
                self._settle(future)
            self._recover()

    def _settle(self, future: Future[list[_Outcome]]) -> None:
        chunk = self.pending.pop(future)
        try:
            self._keep(future.result())
        except BrokenProcessPool:
            self.suspects += chunk

    def _recover(self) -> None:
        """A worker died: start a new pool and read the files it may have been reading one at a time, so that only
        a file that kills a worker again is recorded as unreadable."""
        suspects, self.suspects = self.suspects, []
        for work in suspects:
            self._restart_pool()
            try:
                self._keep(self.pool.submit(read_chunk, self.root, [work]).result())
            except BrokenProcessPool:
                self._keep([_Outcome(work, None, CRASH_REASON)])
        self._restart_pool()

    def _restart_pool(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = _pool(self.workers)

    def _keep(self, outcomes: list[_Outcome]) -> None:
        for outcome in outcomes:
            new = outcome.work.granule_id is None
            self.report.added += new
            self.report.updated += not new
            self.report.unreadable += outcome.metadata is None
        self.written += outcomes
        self.done += len(outcomes)
        if len(self.written) >= WRITE_BATCH or time.monotonic() - self.last_write > WRITE_SECONDS:
            self._write()
        self._tick()

    def _write(self) -> None:
        """One transaction for the batch: new granules inserted, changed ones updated in place (same id)."""
        rows = [_row(self.dataset_id, outcome) for outcome in self.written]
        new = [row for row, outcome in zip(rows, self.written, strict=True) if outcome.work.granule_id is None]
        changed = [row | {"granule_id": o.work.granule_id} for row, o in zip(rows, self.written, strict=True)]
        changed = [row for row in changed if row["granule_id"] is not None]
        with self.engine.begin() as connection:
            if new:
                connection.execute(insert(Granule), new)
            if changed:
                connection.execute(update(Granule).where(Granule.id == bindparam("granule_id")), changed)
        self.written, self.last_write = [], time.monotonic()

    def _sweep(self) -> None:
        """Delete the granules of files no longer listed: those catalogued before the run whose bit is clear.

        Paged along the (dataset_id, path) unique index, so every backend reads each granule once."""
        last = ""
        while True:
            query = select(Granule.path, Granule.id).where(Granule.dataset_id == self.dataset_id, Granule.path > last)
            with self.engine.connect() as connection:
                rows = connection.execute(query.order_by(Granule.path).limit(SWEEP_BATCH)).all()
            if not rows:
                return
            gone = [i for _, i in rows if i <= self.highest and not self.seen[i >> 3] & (1 << (i & 7))]
            if gone:
                with self.engine.begin() as connection:
                    connection.execute(delete(Granule).where(Granule.id.in_(gone)))
                self.report.removed += len(gone)
            last = rows[-1][0]

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress(f"index {self.dataset_id}", self.done, self.listed)


def _row(dataset_id: str, outcome: _Outcome) -> dict[str, Any]:
    """The granule columns for an outcome (every column, so that an update clears what a file no longer has)."""
    file, metadata = outcome.work.file, outcome.metadata
    read = {name: getattr(metadata, name, None) for name in _READ_COLUMNS}
    return read | {
        "dataset_id": dataset_id,
        "path": file.path,
        "size": file.size,
        "mtime_ns": file.mtime_ns,
        "indexed_at": dt.datetime.now(dt.UTC),
        "status": "unreadable" if metadata is None else "ok",
        "reason": outcome.reason,
        "variables": [variable.as_dict() for variable in metadata.variables] if metadata else [],
        "attributes": metadata.attributes if metadata else {},
    }


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes; forked ones freeze what they inherit, so that their garbage collector ignores it."""
    return ProcessPoolExecutor(max_workers=workers, initializer=gc.freeze)
