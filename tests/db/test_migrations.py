"""The database on both backends: migrations create exactly the models, SQLite is set up for concurrency."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from nephelae.config import load_settings
from nephelae.db import (
    AuditEvent,
    Base,
    backend_name,
    current_revision,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from nephelae.errors import ConfigurationError, ServiceUnavailable


def test_upgrade_creates_the_schema_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision()
    assert upgrade(engine) == head_revision()
    assert current_revision(engine) == head_revision()
    assert "audit_events" in inspect(engine).get_table_names()
    engine.dispose()


def test_migrations_match_the_models(engine: Engine) -> None:
    """A model changed without a migration (or the reverse) fails here."""
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_backend_is_what_the_url_says(engine: Engine, database_url: str) -> None:
    assert backend_name(engine) == database_url.split(":")[0].split("+")[0]


def test_timestamps_come_back_in_utc(engine: Engine) -> None:
    sessions = session_factory(engine)
    moment = dt.datetime(2020, 6, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with sessions.begin() as session:
        session.add(AuditEvent(kind="test", at=moment, detail={"k": [1, 2]}))
    with sessions() as session:
        event = session.scalars(select(AuditEvent)).one()
    assert event.at == moment
    assert event.at.tzinfo == dt.UTC
    assert event.detail == {"k": [1, 2]}


def test_default_database_is_sqlite_in_the_home_in_wal_mode(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    engine = make_engine(settings.database)
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
    assert (settings.home / "nephelae.db").is_file()


@pytest.mark.parametrize("url", ["not a url", "mysql+nodriver://x/y"])
def test_bad_database_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"database URL|cannot use database"):
        make_engine(url)


def test_unreachable_database_says_so() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(ServiceUnavailable, match="cannot reach the database at postgresql"):
        upgrade(engine)
