"""The indexer on a real archive: demo files, real EO files and damaged ones, on both backends.

Counts, unreadable files with their reasons, incremental runs (touched, added, removed files), confinement to the
root (symlinks), crashes and errors of the reader in the worker processes, fsspec roots.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
import xarray as xr
from sqlalchemy import Engine, select

from nephelae.catalog import indexer
from nephelae.catalog.datasets import add_dataset, get_dataset
from nephelae.catalog.indexer import CRASH_REASON, IndexReport, index_dataset, list_files, matches
from nephelae.catalog.metadata import GranuleMetadata
from nephelae.catalog.query import BBox, Interval
from nephelae.catalog.search import search_granules
from nephelae.db import session_factory
from nephelae.db.locks import exclusive
from nephelae.db.models import Granule
from nephelae.demo.archive import build_demo_archive
from nephelae.errors import Conflict, ServiceUnavailable
from tests.support.real_data import real_files

DEMO_FILES = 14  # two days: one L4, five L2P and one meteorology file a day
REAL = [
    real_files("ghrsst-l4-ostia-anom-glob")[0],  # NetCDF-3
    real_files("imos-gsla-australia")[0],  # crosses the antimeridian
    real_files("ghrsst-l2p-viirs-npp-navo")[0],  # swath
]
DAMAGED = {"empty.nc", "text.nc", "truncated-classic.nc", "truncated-hdf5.nc"}


@pytest.fixture(scope="module")
def demo_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    build_demo_archive(root, days=2)
    return root


@pytest.fixture
def archive(tmp_path: Path, demo_archive: Path) -> Path:
    """Demo files, copies of real files and damaged files named *.nc, under one root."""
    root = tmp_path / "archive"
    shutil.copytree(demo_archive, root)
    (root / "real").mkdir()
    for path in REAL:
        shutil.copy(path, root / "real" / path.name)
    damaged = root / "damaged"
    damaged.mkdir()
    (damaged / "empty.nc").write_bytes(b"")
    (damaged / "text.nc").write_text("date,sst\n2020-01-01,290.1\n")
    (damaged / "truncated-classic.nc").write_bytes(REAL[0].read_bytes()[: REAL[0].stat().st_size // 2])
    hdf5 = next(root.glob("demo-l4-sst/**/*.nc"))
    (damaged / "truncated-hdf5.nc").write_bytes(hdf5.read_bytes()[:4096])
    return root


def register(engine: Engine, root: Path | str, pattern: str = "**/*.nc", dataset_id: str = "archive") -> None:
    with session_factory(engine)() as session:
        add_dataset(session, dataset_id, str(root), pattern)


def granules(engine: Engine, dataset_id: str = "archive") -> dict[str, Granule]:
    with session_factory(engine)() as session:
        return {g.path: g for g in session.scalars(select(Granule).where(Granule.dataset_id == dataset_id))}


def found_ids(engine: Engine, **query: Any) -> list[int]:
    with session_factory(engine)() as session:
        return [g.id for g in search_granules(session, "archive", limit=1000, **query).granules]


def test_index_counts_reads_and_records_unreadable_files(engine: Engine, archive: Path) -> None:
    register(engine, archive)
    calls: list[tuple[str, int, int]] = []
    report = index_dataset(engine, "archive", workers=2, progress=lambda *call: calls.append(call))
    total = DEMO_FILES + len(REAL) + len(DAMAGED)
    assert (report.added, report.updated, report.removed, report.unchanged) == (total, 0, 0, 0)
    assert report.unreadable == len(DAMAGED)
    catalog = granules(engine)
    unreadable = {path.split("/")[-1]: g.reason for path, g in catalog.items() if g.status == "unreadable"}
    assert set(unreadable) == DAMAGED
    assert all(reason and len(reason) > 10 for reason in unreadable.values())
    assert "empty" in str(unreadable["empty.nc"]) and "truncated" in str(unreadable["truncated-classic.nc"])
    crossing = catalog[f"real/{REAL[1].name}"]
    assert crossing.status == "ok" and crossing.west > crossing.east  # type: ignore[operator]
    assert calls[-1] == ("index archive", total, total)
    with session_factory(engine)() as session:
        dataset = get_dataset(session, "archive")
        assert (dataset.granule_count, dataset.unreadable_count) == (total, len(DAMAGED))
    assert sorted(found_ids(engine)) == sorted(g.id for g in catalog.values() if g.status == "ok")
    across = found_ids(engine, bbox=BBox(179, -20, -179, -10), interval=Interval(crossing.time_start, None))
    assert crossing.id in across and len(across) < total - len(DAMAGED)  # through the index


def test_rerun_is_incremental(engine: Engine, archive: Path) -> None:
    register(engine, archive)
    first = index_dataset(engine, "archive", workers=2)
    assert index_dataset(engine, "archive", workers=2) == IndexReport(
        unchanged=first.added, seconds=pytest.approx(0, abs=60)
    )
    before = granules(engine)
    swaths = sorted(archive.glob("demo-l2p-sst/**/*.nc"))
    touched, removed = swaths[0], swaths[1]
    info = touched.stat()
    os.utime(touched, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))
    removed.unlink()
    added = archive / "real" / real_files("ghrsst-l4-mur25-glob")[0].name
    shutil.copy(real_files("ghrsst-l4-mur25-glob")[0], added)
    report = index_dataset(engine, "archive", workers=2)
    assert (report.added, report.updated, report.removed, report.unreadable) == (1, 1, 1, 0)
    assert report.unchanged == first.added - 2
    after = granules(engine)
    relative = str(removed.relative_to(archive))
    gone = before[relative]
    assert relative not in after
    interval = Interval(gone.time_start, gone.time_end)
    assert gone.id not in found_ids(engine, interval=interval, bbox=BBox(gone.west, gone.south, gone.east, gone.north))  # type: ignore[arg-type]
    updated = after[str(touched.relative_to(archive))]
    assert (
        updated.id == before[str(touched.relative_to(archive))].id
        and updated.mtime_ns == info.st_mtime_ns + 5_000_000_000
    )
    assert after[str(added.relative_to(archive))].status == "ok"


def test_only_files_inside_the_root_are_indexed(engine: Engine, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(REAL[0], outside / "escaped.nc")
    shutil.copy(REAL[2], root / "sub" / "inside.nc")
    (root / "escape.nc").symlink_to(outside / "escaped.nc")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "alias.nc").symlink_to(root / "sub" / "inside.nc")  # a link that stays inside is followed
    (root / ".hidden.nc").write_bytes(REAL[2].read_bytes())
    register(engine, root)
    report = index_dataset(engine, "archive", workers=1)
    assert set(granules(engine)) == {"sub/inside.nc", "alias.nc"}
    assert (report.added, report.unreadable) == (2, 0)


def test_zarr_stores_matching_the_pattern_are_granules(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "stores"
    for number, source in enumerate(REAL[:2]):
        with xr.open_dataset(source) as dataset:
            dataset.to_zarr(root / "2020" / f"granule-{number}.zarr", zarr_format=2, consolidated=True)
    (root / "folder.zarr").mkdir()  # a directory that is no store is walked into, not catalogued
    register(engine, root, pattern="**/*.zarr")
    report = index_dataset(engine, "archive", workers=1)
    assert set(granules(engine)) == {"2020/granule-0.zarr", "2020/granule-1.zarr"}
    assert (report.added, report.unreadable) == (2, 0)
    again = index_dataset(engine, "archive", workers=1)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)  # unchanged stores are not read again


def test_one_indexing_of_a_dataset_at_a_time(engine: Engine, archive: Path) -> None:
    register(engine, archive)
    with exclusive(engine, "index:archive", "busy"), pytest.raises(Conflict, match="being indexed by another process"):
        index_dataset(engine, "archive", workers=1)  # as if another process were indexing it
    with exclusive(engine, "index:other", "busy"):  # another dataset's indexing does not stand in the way
        assert index_dataset(engine, "archive", workers=1).added > 0
    assert index_dataset(engine, "archive", workers=1).added == 0  # the lock was released


def test_pattern_matching_by_segments(tmp_path: Path) -> None:
    assert matches(("a.nc",), ("**", "*.nc"))
    assert matches(("2020", "001", "a.nc"), ("**", "*.nc"))
    assert matches(("2020", "001", "a.nc"), ("2020", "*", "*.nc"))
    assert not matches(("2021", "001", "a.nc"), ("2020", "**", "*.nc"))
    assert not matches(("2020", "a.nc"), ("*.nc",))  # `*` stays within a segment
    for name in ("2020/001/a.nc", "2020/001/b.txt", "2021/002/c.nc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [f.path for f in list_files(str(tmp_path), "2020/*/*.nc")] == ["2020/001/a.nc"]
    assert sorted(f.path for f in list_files(f"file://{tmp_path}", "**/*.nc")) == ["2020/001/a.nc", "2021/002/c.nc"]


def _failing_reader(kind: str) -> Callable[[str | os.PathLike[str]], GranuleMetadata]:
    real = indexer.read_granule_metadata

    def read(path: str | os.PathLike[str]) -> GranuleMetadata:
        if Path(path).name.startswith(kind):
            if kind == "crash":
                os._exit(3)  # as a segmentation fault in a C library would end the worker
            raise ValueError("a bug in the reader")
        return real(path)

    return read


@pytest.mark.parametrize("kind", ["crash", "bug"])
def test_a_failing_reader_never_stops_the_run(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Worker processes are forked: they see the patched reader."""
    monkeypatch.setattr(indexer, "read_granule_metadata", _failing_reader(kind))
    monkeypatch.setattr(indexer, "READ_CHUNK", 2)
    root = tmp_path / "root"
    root.mkdir()
    for number in range(9):
        shutil.copy(REAL[2], root / f"good-{number}.nc")
    shutil.copy(REAL[2], root / f"{kind}.nc")
    register(engine, root)
    report = index_dataset(engine, "archive", workers=2)
    assert (report.added, report.unreadable) == (10, 1)
    catalog = granules(engine)
    assert catalog[f"{kind}.nc"].status == "unreadable"
    expected = CRASH_REASON if kind == "crash" else "unexpected ValueError: a bug in the reader"
    assert catalog[f"{kind}.nc"].reason == expected
    assert all(g.status == "ok" for path, g in catalog.items() if path.startswith("good"))


def test_fsspec_url_root(engine: Engine) -> None:
    """A root that is an fsspec URL (memory:// here; s3:// or gs:// alike) is listed and read through fsspec."""
    filesystem = fsspec.filesystem("memory")
    try:
        for path in REAL[:2]:
            filesystem.pipe(f"/nephelae-test/{path.parent.name}/{path.name}", path.read_bytes())
        filesystem.pipe("/nephelae-test/notes.txt", b"not matched")
        register(engine, "memory://nephelae-test")
        report = index_dataset(engine, "archive", workers=1)
        assert (report.added, report.unreadable) == (2, 0)
        assert {g.status for g in granules(engine).values()} == {"ok"}
        filesystem.rm(f"/nephelae-test/{REAL[0].parent.name}", recursive=True)
        assert index_dataset(engine, "archive", workers=1).removed == 1
    finally:
        filesystem.rm("/nephelae-test", recursive=True)


def test_an_emptied_root_is_refused_unless_allowed(engine: Engine, tmp_path: Path) -> None:
    """An unmounted archive lists nothing: that must not silently empty the catalog."""
    root = tmp_path / "mount"
    shutil.copytree(real_files("ghrsst-l4-ostia-anom-glob", "*.nc")[0].parent, root)
    with session_factory(engine)() as session:
        add_dataset(session, "ostia", str(root), "*.nc")
    assert index_dataset(engine, "ostia", workers=1).added == 3
    for path in root.iterdir():
        path.unlink()
    with pytest.raises(ServiceUnavailable, match="is the archive mounted"):
        index_dataset(engine, "ostia", workers=1)
    assert index_dataset(engine, "ostia", workers=1, allow_empty=True).removed == 3
