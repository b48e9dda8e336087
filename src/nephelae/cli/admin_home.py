"""What every `nephelae admin` command shares: a session on the home's database, the operator, the rendering."""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from nephelae.cli.output import console, error_console
from nephelae.config import Settings
from nephelae.db import current_revision, head_revision, make_engine, session_factory
from nephelae.errors import ConfigurationError

# Account.decided_by holds at most 32 characters (a username); the actor must fit it.
_ACTOR_LENGTH = 32


@contextmanager
def open_session(settings: Settings) -> Iterator[Session]:
    """A session on the home's database, which must exist and be migrated; the engine is disposed after."""
    _check_database_exists(settings)
    engine = make_engine(settings.database)
    try:
        _check_migrated(engine, settings)
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _check_database_exists(settings: Settings) -> None:
    """Refuse a missing SQLite file rather than create an empty one in a mistyped home."""
    try:
        url = make_url(settings.database)
    except ArgumentError:
        return  # make_engine explains what is wrong with the URL
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    if not Path(url.database).exists():
        check = "the database_url setting" if settings.database_url else "--home (or NEPHELAE_HOME)"
        raise ConfigurationError(
            f"no database at {url.database}; check {check}, "
            f"or create it with `nephelae db upgrade --home {settings.home}`"
        )


def _check_migrated(engine: Engine, settings: Settings) -> None:
    """Operator commands never migrate: the schema changes only on an explicit `nephelae db upgrade`."""
    revision, head = current_revision(engine), head_revision()
    if revision != head:
        state = "empty" if revision is None else f"at revision {revision}"
        raise ConfigurationError(
            f"the database is {state}, this version of nephelae needs revision {head}; "
            f"run `nephelae db upgrade --home {settings.home}` first"
        )


def operator_actor() -> str:
    """Who acts, for the audit log: `operator:<login name>` of the person running the command."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment nor in the password database
        login = "unknown"
    return f"operator:{login}"[:_ACTOR_LENGTH]


def timestamp(value: dt.datetime | None) -> str:
    """A moment for people, in UTC to the minute; empty when unset."""
    return "" if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


def iso(value: dt.datetime | None) -> str | None:
    """A moment for scripts: ISO 8601 with its UTC offset, or null."""
    return None if value is None else value.isoformat()


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str = "Nothing to show."
) -> None:
    """A Rich table, or the sentence `empty` when there are no rows; cells are plain text, never markup."""
    if not rows:
        say(empty)
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")  # wrap long values rather than cut them: they get copied
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console().print(table)


def say(message: str) -> None:
    """One plain sentence on standard output, unwrapped so that the commands it quotes can be copied."""
    console().print(message, markup=False, soft_wrap=True)


def note(message: str) -> None:
    """A remark for the person at the terminal, on standard error, out of the way of scripts reading stdout."""
    error_console().print(message, markup=False, soft_wrap=True)
