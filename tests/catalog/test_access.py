"""open_dataset: the catalog's granules as one lazy Dataset, checked against opening the files directly."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from nephelae.accounts import Principal
from nephelae.catalog.access import open_dataset
from nephelae.catalog.datasets import add_dataset
from nephelae.catalog.indexer import index_dataset
from nephelae.catalog.query import parse_bbox, parse_interval
from nephelae.db import session_factory
from nephelae.db.models import Dataset
from nephelae.demo.archive import DemoDataset, build_demo_archive
from nephelae.errors import InvalidInput, NotFound, PermissionDenied
from tests.support.real_data import real_files

OUTSIDER = Principal(account_id=99, username="mallory", role="user", projects=(), address="127.0.0.1")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> list[DemoDataset]:
    return build_demo_archive(tmp_path_factory.mktemp("archive"), days=3)


@pytest.fixture
def session(engine: Engine, archive: list[DemoDataset]) -> Iterator[Session]:
    with session_factory(engine)() as session:
        for demo in archive:
            add_dataset(session, demo.id, str(demo.root), demo.pattern)
            index_dataset(engine, demo.id, workers=1)
        yield session


def _files(session: Session, dataset_id: str) -> list[Path]:
    dataset = session.get(Dataset, dataset_id)
    assert dataset is not None
    return sorted(Path(dataset.root).rglob("*.nc"))


def test_l4_subset_matches_the_files(session: Session) -> None:
    ds = open_dataset(
        session,
        "demo-l4-sst",
        time=parse_interval("2020-01-02/.."),
        bbox=parse_bbox("-80,0,0,60"),
        variables=["analysed_sst"],
    )
    assert ds.analysed_sst.chunks is not None  # lazy
    assert list(ds.data_vars) == ["analysed_sst"]
    assert ds.time.size == 2
    with xr.open_mfdataset(_files(session, "demo-l4-sst")[1:], combine="by_coords") as direct:
        expected = direct.analysed_sst.sel(lat=slice(0, 60), lon=slice(-80, 0))
        np.testing.assert_array_equal(ds.analysed_sst.values, expected.values)


def test_l2p_swaths_stack_along_time_with_their_own_coordinates(session: Session) -> None:
    ds = open_dataset(session, "demo-l2p-sst", time=parse_interval("2020-01-01/2020-01-01T23:59:59Z"))
    assert ds.time.size == 5
    assert ds.lat.dims == ("time", "nj", "ni")  # each granule keeps its geolocation
    first = _files(session, "demo-l2p-sst")[0]
    with xr.open_dataset(first) as direct:
        np.testing.assert_array_equal(ds.lat.isel(time=0).values, direct.lat.values)


def test_access_rules_apply(session: Session) -> None:
    with pytest.raises(PermissionDenied, match="no access to dataset demo-l4-sst"):
        open_dataset(session, "demo-l4-sst", principal=OUTSIDER)


def test_nothing_matching_is_not_found(session: Session) -> None:
    when = parse_interval(dt.datetime(2031, 1, 1, tzinfo=dt.UTC).isoformat())
    with pytest.raises(NotFound, match="no granule of demo-l4-sst matches"):
        open_dataset(session, "demo-l4-sst", time=when)


def test_granules_on_different_grids_are_refused_not_misplaced(engine: Engine, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    avhrr = real_files("ghrsst-l4-ncei-avhrr-oi-glob")  # -180..180, two days
    ostia = real_files("ghrsst-l4-ostia-anom-glob")[0]  # 0..360, the same shape
    for source in [*avhrr, ostia]:
        shutil.copy(source, root / source.name)
    with session_factory(engine)() as session:
        add_dataset(session, "mixed", str(root), "*.nc")
        index_dataset(engine, "mixed", workers=1)
        with pytest.raises(InvalidInput, match="cannot be stacked along time"):
            open_dataset(session, "mixed", variables=["analysed_sst"])
        (root / ostia.name).unlink()  # the same grid day after day stacks
        index_dataset(engine, "mixed", workers=1)
        stacked = open_dataset(session, "mixed", variables=["analysed_sst"])
        assert stacked.sizes["time"] == len(avhrr) and float(stacked["lon"][0]) == pytest.approx(-179.875)
