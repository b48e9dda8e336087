"""One campaign engine per database: two engines running the same campaigns would submit every task twice.

On PostgreSQL, a session-level advisory lock held on a connection of its own (several servers may share the
database; the lock goes when its connection does, so a crashed server frees it). On SQLite, an exclusive `flock` on
a file beside the database (SQLite is one machine; the kernel drops the lock when the process dies). An engine that
does not get the lock stays idle and tries again: it takes over when the other one stops.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from nephelae.config import Settings

logger = logging.getLogger(__name__)

ADVISORY_KEY = 0x4E455048454C4145 & 0x7FFFFFFFFFFFFFFF  # "NEPHELAE", as a positive bigint
RETRY_SECONDS = 5.0
CHECK_SECONDS = 10.0  # how often the PostgreSQL lock connection is checked to be alive


class EngineLock:
    """Non-blocking: `acquire()` says whether this engine holds the lock (again) now."""

    def __init__(self, settings: Settings, sql_engine: Engine) -> None:
        self.sql = sql_engine
        self.settings = settings
        self._connection: Connection | None = None
        self._file: int | None = None
        self._next_try = 0.0
        self._next_check = 0.0
        self._waiting_logged = False

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def acquire(self) -> bool:
        if self.held:
            return self._still_held()
        now = time.monotonic()
        if now < self._next_try:
            return False
        self._next_try = now + RETRY_SECONDS
        got = self._acquire_postgresql() if self.sql.dialect.name == "postgresql" else self._acquire_file()
        if not got and not self._waiting_logged:
            logger.warning("campaign engine: another engine runs the campaigns of this database; standing by")
            self._waiting_logged = True
        return got

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                self._connection.close()
            except Exception:
                logger.debug("campaign engine: the lock connection was already gone", exc_info=True)
            self._connection = None
        if self._file is not None:
            os.close(self._file)  # closing the descriptor drops the flock
            self._file = None

    def _acquire_postgresql(self) -> bool:
        connection = self.sql.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}))
        if got:
            self._connection = connection
            self._next_check = time.monotonic() + CHECK_SECONDS
        else:
            connection.close()
        return got

    def _acquire_file(self) -> bool:
        path = self._lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            return False
        self._file = descriptor
        return True

    def _lock_path(self) -> Path:
        database: Any = self.sql.url.database
        if database and database != ":memory:":
            return Path(f"{database}.engine-lock")
        return self.settings.campaigns_dir / ".engine-lock"

    def _still_held(self) -> bool:
        """A PostgreSQL lock lives as long as its connection: check it now and then."""
        if self._connection is None or time.monotonic() < self._next_check:
            return True
        self._next_check = time.monotonic() + CHECK_SECONDS
        try:
            self._connection.execute(text("SELECT 1"))
            return True
        except Exception:
            logger.error("campaign engine: lost the database connection holding the engine lock")
            self.release()
            return False
