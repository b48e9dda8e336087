"""A small demo archive indexed into a SQLite catalog, shared by the analysis tests of the service, API and CLI."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from nephelae.accounts import projects
from nephelae.catalog.datasets import add_dataset
from nephelae.catalog.indexer import index_dataset
from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, session_factory, upgrade
from nephelae.demo.archive import build_demo_archive
from nephelae.demo.catalog import register_and_index

DAYS = 4
L4 = "demo-l4-sst"
L2P = "demo-l2p-sst"
MET = "demo-surface-met"


@dataclass(frozen=True)
class DemoCatalog:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def shared_archive(factory: pytest.TempPathFactory) -> Path:
    """The demo archive of DAYS days, built once per test session (the build keeps files already written)."""
    root = factory.getbasetemp() / "analysis-demo-archive"
    build_demo_archive(root, days=DAYS)
    return root


def migrated_settings(home: Path, **overrides: object) -> Settings:
    settings = load_settings(home / "home", database_url=f"sqlite:///{home / 'catalog.db'}", **overrides)
    prepare_home(settings)
    engine = make_engine(settings.database)
    upgrade(engine)
    engine.dispose()
    return settings


def demo_catalog(factory: pytest.TempPathFactory, **overrides: object) -> DemoCatalog:
    """A new home whose SQLite catalog holds the three demo datasets, indexed (not public, in no project)."""
    archive = shared_archive(factory)
    settings = migrated_settings(factory.mktemp("home"), **overrides)
    engine = make_engine(settings.database)
    register_and_index(engine, build_demo_archive(archive, days=DAYS))
    return DemoCatalog(settings, engine, session_factory(engine))


def index_copies(engine: Engine, dataset_id: str, files: list[Path], directory: Path, *, public: bool = False) -> None:
    """Copy `files` (e.g. the read-only real ones) to `directory`, register them as a dataset and index it."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, directory / path.name)
    with session_factory(engine)() as session:
        add_dataset(session, dataset_id, str(directory), "*.nc", public=public, actor="test")
    index_dataset(engine, dataset_id)


@dataclass(frozen=True)
class Callers:
    """Tokens: alice's project (oceanheatflux) holds the demo L4 dataset, bob's holds nothing."""

    alice: str
    bob: str


def serve_demo_l4(engine: Engine, factory: pytest.TempPathFactory) -> Callers:
    """The demo L4 archive registered in oceanheatflux and indexed, in the database a test server serves."""
    from tests.api.support import People

    people = People(session_factory(engine))
    callers = Callers(alice=people.account("alice"), bob=people.account("bob"))
    with session_factory(engine)() as session:
        projects.create_project(session, "oceanheatflux", actor="setup")
        projects.add_member(session, "oceanheatflux", "alice", actor="setup")
        add_dataset(
            session, L4, str(shared_archive(factory) / L4), "**/*.nc", title="Demo L4 SST", projects=["oceanheatflux"]
        )
    index_dataset(engine, L4)
    return callers
