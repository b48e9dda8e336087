"""Named exclusive locks across processes (and, on PostgreSQL, machines) sharing one database.

PostgreSQL: a session-level advisory lock on a connection of its own, freed when that connection closes (a crashed
process frees it). SQLite: an exclusive `flock` on a file beside the database (SQLite lives on one machine; the
kernel drops the lock when the process dies). Locks are tried, never waited for: the caller says what is busy.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from nephelae.errors import Conflict

_memory_locks: dict[tuple[str, str], threading.Lock] = {}  # in-memory SQLite: one process only
_memory_guard = threading.Lock()


def advisory_key(name: str) -> int:
    """A stable positive bigint for `name`: PostgreSQL advisory locks are numbered."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") & 0x7FFFFFFFFFFFFFFF


@contextmanager
def exclusive(engine: Engine, name: str, busy: str) -> Iterator[None]:
    """Hold the lock `name` for the block, or raise Conflict(`busy`) at once if someone else holds it."""
    if engine.dialect.name == "postgresql":
        with _advisory(engine, name, busy):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with _in_memory(str(engine.url), name, busy):
            yield
        return
    with file_lock(Path(f"{database}.{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"), busy):
        yield


@contextmanager
def _advisory(engine: Engine, name: str, busy: str) -> Iterator[None]:
    key = advisory_key(name)
    with engine.connect() as connection:
        if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
            raise Conflict(busy)
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@contextmanager
def file_lock(path: Path, busy: str, *, shared: bool = False, mode: int = 0o600) -> Iterator[None]:
    """Hold an `flock` on `path` (created with `mode` if missing; a link there is refused) for the block, exclusive
    or `shared`, or raise Conflict(`busy`) at once. The kernel drops it when the process dies."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            fcntl.flock(descriptor, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(busy) from None
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextmanager
def _in_memory(url: str, name: str, busy: str) -> Iterator[None]:
    with _memory_guard:
        lock = _memory_locks.setdefault((url, name), threading.Lock())
    if not lock.acquire(blocking=False):
        raise Conflict(busy)
    try:
        yield
    finally:
        lock.release()
