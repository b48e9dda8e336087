"""Shared fixtures: a clean environment, a home per test, SQLite and a real throw-away PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, upgrade
from tests.support.postgres import PostgresServer, start_postgres_server
from tests.support.server import RunningServer, serve_in_thread


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's NEPHELAE_* variables."""
    for name in list(os.environ):
        if name.startswith("NEPHELAE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres_server()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for a fresh home on each database backend, home laid out and database migrated."""
    settings = load_settings(tmp_path / "home", database_url=database_url)
    prepare_home(settings)
    engine = make_engine(settings.database)
    upgrade(engine)
    engine.dispose()
    return settings


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database)
    yield engine
    engine.dispose()


@pytest.fixture
def server(settings: Settings) -> Iterator[RunningServer]:
    """The platform served by a real uvicorn on 127.0.0.1, on each database backend."""
    with serve_in_thread(settings) as running:
        yield running
