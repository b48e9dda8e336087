"""The database on both backends: migrations create exactly the models, SQLite is set up for concurrency."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, select, text

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
from nephelae.db.migrate import alembic_config
from nephelae.errors import ConfigurationError, ServiceUnavailable


def test_upgrade_creates_the_schema_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision()
    assert upgrade(engine) == head_revision()
    assert current_revision(engine) == head_revision()
    assert "audit_events" in inspect(engine).get_table_names()
    engine.dispose()


# The catalog's spatio-temporal index (migration 0004) has no model; by name, per backend, and nothing else.
SPATIAL_INDEX_TABLES = {
    "sqlite": {
        "granule_box_datasets",
        "granule_rtree",
        "granule_rtree_node",
        "granule_rtree_parent",
        "granule_rtree_rowid",
    },
    "postgresql": {"granule_box_datasets", "granule_boxes"},
}


def test_migrations_match_the_models(engine: Engine) -> None:
    """A model changed without a migration (or the reverse) fails here."""
    spatial = SPATIAL_INDEX_TABLES[backend_name(engine)]

    def include_name(name: str | None, type_: str, _parents: object) -> bool:
        return not (type_ == "table" and name in spatial)

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    assert spatial <= set(inspect(engine).get_table_names())  # what is left out is there, and only that


def _add_two_granules(connection: Connection) -> None:
    """A dataset with two readable granules, the second crossing the antimeridian."""
    moment = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    connection.execute(
        text(
            "INSERT INTO datasets (id, title, description, license, root, pattern, public, provenance, "
            "created_at, granule_count, unreadable_count, variables) "
            "VALUES ('d', 'd', '', 'x', '/r', '*.nc', false, '{}', :t, 0, 0, '[]')"
        ),
        {"t": moment},
    )
    for number, (west, east) in enumerate([(-10.0, 10.0), (170.0, -170.0)]):
        connection.execute(
            text(
                "INSERT INTO granules (id, dataset_id, path, size, mtime_ns, status, time_start, time_end, "
                "west, south, east, north, variables, attributes, indexed_at) "
                "VALUES (:id, 'd', :path, 1, 1, 'ok', :t, :t, :west, -5, :east, 5, '[]', '{}', :t)"
            ),
            {"id": number + 1, "path": f"{number}.nc", "t": moment, "west": west, "east": east},
        )


def _boxes(engine: Engine) -> int:
    table = "granule_rtree" if backend_name(engine) == "sqlite" else "granule_boxes"
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_spatial_index_follows_the_granules(engine: Engine) -> None:
    """Triggers keep the boxes in step with inserts, updates and deletes (crossing the antimeridian: two boxes)."""
    with engine.begin() as connection:
        _add_two_granules(connection)
    assert _boxes(engine) == 3
    with engine.begin() as connection:
        connection.execute(text("UPDATE granules SET status = 'unreadable' WHERE id = 2"))
    assert _boxes(engine) == 1
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM datasets"))  # cascades to the granules, and their boxes
    assert _boxes(engine) == 0


def test_spatial_index_migration_indexes_existing_granules(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0003")
        _add_two_granules(connection)
    upgrade(engine)
    assert _boxes(engine) == 3
    engine.dispose()


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
