"""A real, throw-away PostgreSQL server for the test suite.

``start_postgres_server()`` runs ``initdb`` and ``pg_ctl`` in a fresh directory under /tmp and
starts PostgreSQL on 127.0.0.1 on a free port, with durability switched off for speed. When the
binaries are missing they are installed with apt-get (root only); when that is impossible the
test fails with the command to run. As root, PostgreSQL runs as the ``postgres`` user (or
``nobody``), since it refuses to run as root.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL

SUPERUSER = "nephelae"
HOST = "127.0.0.1"
INSTALL_HINT = "apt-get update && apt-get install -y --no-install-recommends postgresql"
_TOOLS = ("initdb", "pg_ctl")
_FAST_SETTINGS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
_START_ATTEMPTS = 3
_SYSTEM_PATH = os.pathsep.join(("/usr/sbin", "/sbin", "/usr/bin", "/bin"))


def _fail(message: str) -> NoReturn:
    """Fail the current test (or fixture set-up) with a plain message; never skip."""
    pytest.fail(message, pytrace=False)


def _tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(args: list[str], *, what: str, timeout: float, cwd: Path | None = None, hint: str = "") -> str:
    """Run ``args`` (no shell), returning its output; fail with the output tail on any error."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _fail(f"{what} failed: {exc}{hint}")
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        _fail(f"{what} failed (exit {result.returncode}): {' '.join(args)}\n{_tail(output)}{hint}")
    return output


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: the numeric version, unknown last."""
    try:
        return tuple(int(part) for part in bin_dir.parent.name.split("."))
    except ValueError:
        return (-1,)


def find_postgres_bin_dir() -> Path | None:
    """The directory holding both initdb and pg_ctl: PATH first, then the newest Debian version."""
    candidates = [Path(found).resolve().parent for tool in _TOOLS if (found := shutil.which(tool))]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bin_dir in candidates:
        if all(os.access(bin_dir / tool, os.X_OK) for tool in _TOOLS):
            return bin_dir
    return None


def _install_postgres() -> None:
    """Install PostgreSQL with apt-get, or fail saying how to install it."""
    hint = f"\nInstall PostgreSQL (initdb, pg_ctl) with:\n    {INSTALL_HINT}"
    apt_get = shutil.which("apt-get")
    if os.geteuid() != 0 or apt_get is None:
        reason = "not running as root" if os.geteuid() != 0 else "no apt-get"
        _fail(f"PostgreSQL (initdb, pg_ctl) not found and cannot be installed automatically: {reason}.{hint}")
    _run([apt_get, "update"], what="apt-get update", timeout=600, hint=hint)
    install = [apt_get, "install", "-y", "--no-install-recommends", "postgresql"]
    _run(install, what="apt-get install postgresql", timeout=1200, hint=hint)


def _ensure_bin_dir() -> Path:
    """Find initdb/pg_ctl, installing PostgreSQL first when they are missing."""
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        _install_postgres()
        bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        _fail(f"PostgreSQL was installed but initdb/pg_ctl are still not found.\n    {INSTALL_HINT}")
    return bin_dir


def _service_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run PostgreSQL as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    _fail("Running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as.")


def _run_as_prefix(user: pwd.struct_passwd | None) -> list[str]:
    """The argv prefix that runs a command as ``user`` (empty when not root)."""
    if user is None:
        return []
    search_path = os.pathsep.join((os.environ.get("PATH", ""), _SYSTEM_PATH))
    if runuser := shutil.which("runuser", path=search_path):
        return [runuser, "-u", user.pw_name, "--"]
    if setpriv := shutil.which("setpriv", path=search_path):
        return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    _fail("Running as root but neither runuser nor setpriv is available: apt-get install util-linux")


def _make_base_dir(user: pwd.struct_passwd | None) -> Path:
    """A fresh directory under /tmp, with a socket sub-directory, owned by ``user``."""
    base = Path(tempfile.mkdtemp(prefix="nephelae-pg-", dir="/tmp" if Path("/tmp").is_dir() else None))
    (base / "socket").mkdir()
    if user is not None:
        for path in (base, base / "socket"):
            os.chown(path, user.pw_uid, user.pw_gid)
    return base


def _free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _read_log(log_file: Path) -> str:
    """The tail of the server log, or a note that there is none."""
    try:
        return _tail(log_file.read_text(errors="replace"))
    except OSError:
        return "(no server log)"


@dataclass
class PostgresServer:
    """A running throw-away PostgreSQL server; ``url`` points at its ``postgres`` database."""

    url: str
    port: int
    base_dir: Path
    bin_dir: Path
    run_as: list[str] = field(default_factory=list)
    _stopped: bool = field(default=False, init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        """The server log file."""
        return self.base_dir / "postgres.log"

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of database ``name`` on this server."""
        url = URL.create("postgresql+psycopg", username=SUPERUSER, host=HOST, port=self.port, database=name)
        return url.render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        with psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True, connect_timeout=10
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def stop(self) -> None:
        """Stop the server immediately and remove its directory; safe to call repeatedly."""
        if self._stopped:
            return
        self._stopped = True
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([*self.run_as, *pg_ctl], capture_output=True, timeout=60, cwd=self.base_dir, check=False)
        self._kill_leftover_postmaster()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _kill_leftover_postmaster(self) -> None:
        """SIGKILL the postmaster if pg_ctl stop left it running."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

    def _pg_ctl_start(self, port: int) -> bool:
        """Try to start the server on ``port``; True when it is up and accepting connections."""
        options = f"-c listen_addresses={HOST} -p {port} -k {self.base_dir / 'socket'} {_FAST_SETTINGS}"
        args = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file)]
        args += ["-w", "-t", "60", "-o", options, "start"]
        try:
            result = subprocess.run(
                [*self.run_as, *args], capture_output=True, timeout=90, cwd=self.base_dir, check=False
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0


def _initdb(server: PostgresServer) -> None:
    """Create the cluster: trust auth, superuser ``nephelae``, UTF8, C locale, no fsync."""
    args = [str(server.bin_dir / "initdb"), "-D", str(server.data_dir), "-A", "trust", "-U", SUPERUSER]
    args += ["--no-sync", "-E", "UTF8", "--locale=C"]
    _run([*server.run_as, *args], what="initdb", timeout=120, cwd=server.base_dir)


def _start_on_free_port(server: PostgresServer) -> None:
    """Start the server on a free port (retrying if the port is taken meanwhile) and set its URL."""
    for _attempt in range(_START_ATTEMPTS):
        port = _free_port()
        if server._pg_ctl_start(port):
            server.port = port
            server.url = server.database_url("postgres")
            return
    _fail(f"PostgreSQL failed to start (pg_ctl start); server log tail:\n{_read_log(server.log_file)}")


def start_postgres_server() -> PostgresServer:
    """Start a throw-away PostgreSQL server; call ``stop()`` on it when done."""
    bin_dir = _ensure_bin_dir()
    user = _service_user()
    run_as = _run_as_prefix(user)
    server = PostgresServer(url="", port=0, base_dir=_make_base_dir(user), bin_dir=bin_dir, run_as=run_as)
    try:
        _initdb(server)
        _start_on_free_port(server)
    except BaseException:
        server.stop()
        raise
    atexit.register(server.stop)
    return server
