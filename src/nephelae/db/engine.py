"""Engines and sessions for SQLite (the embedded default) and PostgreSQL (the same code at scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nephelae.errors import ConfigurationError, ServiceUnavailable

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers never wait for the writer
    "PRAGMA foreign_keys=ON",  # SQLite leaves them off unless asked, per connection
    "PRAGMA busy_timeout=10000",  # server, CLI and workers share one file: wait rather than fail
    "PRAGMA synchronous=NORMAL",  # safe with WAL, much faster than FULL
)


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite configured for concurrent use and PostgreSQL on psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"database URL {url!r} is not a SQLAlchemy URL; use e.g. "
            "postgresql+psycopg://user@host/db or sqlite:///path/nephelae.db"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed, pool_pre_ping=True, **_engine_options(parsed.get_backend_name()))
    except (ArgumentError, NoSuchModuleError) as error:
        raise ConfigurationError(f"cannot use database URL {url!r}: {error}") from None
    if engine.dialect.name == "sqlite":
        _prepare_sqlite(engine)
    return engine


def _engine_options(backend: str) -> dict[str, Any]:
    if backend == "sqlite":
        return {"connect_args": {"timeout": 10, "check_same_thread": False}}
    return {"pool_size": 10, "max_overflow": 20, "connect_args": {"connect_timeout": 10}}


def _prepare_sqlite(engine: Engine) -> None:
    database = engine.url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (services return them to entry points)."""
    return sessionmaker(engine, expire_on_commit=False)


def backend_name(engine: Engine) -> str:
    """`sqlite` or `postgresql`."""
    return engine.dialect.name


def check_connection(engine: Engine) -> None:
    """Raise `ServiceUnavailable` with a useful detail if the database cannot be reached."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        reason = " ".join(str(error.orig or error).split())  # drivers answer over several lines
        raise ServiceUnavailable(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{reason}; check NEPHELAE_DATABASE_URL and that the server is running"
        ) from None
