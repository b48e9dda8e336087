"""Tests for the throw-away PostgreSQL server used by the database tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from . import postgres
from .postgres import INSTALL_HINT, PostgresServer, start_postgres_server


def _port_is_open(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _check_databases_are_isolated(server: PostgresServer) -> None:
    """Two databases on one server: a table created in one is invisible in the other."""
    alpha = create_engine(server.create_database("alpha"))
    beta = create_engine(server.create_database("beta"))
    try:
        with alpha.begin() as conn:
            assert "PostgreSQL" in conn.execute(text("select version()")).scalar_one()
            conn.execute(text("create table samples (id int primary key, name text not null)"))
            conn.execute(text("insert into samples values (1, 'sst'), (2, 'chl')"))
        with alpha.connect() as conn:
            names = conn.execute(text("select name from samples order by id")).scalars().all()
            assert names == ["sst", "chl"]
        with beta.connect() as conn:
            assert conn.execute(text("select current_database()")).scalar_one() == "beta"
            assert conn.execute(text("select to_regclass('public.samples')")).scalar_one() is None
    finally:
        alpha.dispose()
        beta.dispose()


def test_server_lifecycle() -> None:
    """Start, use two isolated databases, stop: the port closes and the directory goes."""
    server = start_postgres_server()
    try:
        assert server.url == f"postgresql+psycopg://nephelae@127.0.0.1:{server.port}/postgres"
        assert _port_is_open(server.port)
        _check_databases_are_isolated(server)
    finally:
        server.stop()
    assert not _port_is_open(server.port)
    assert not server.base_dir.exists()
    server.stop()  # idempotent


def test_missing_postgres_without_root_fails_with_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root, missing binaries fail the test (no skip) and say how to install them."""
    monkeypatch.setattr(postgres, "find_postgres_bin_dir", lambda: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.fail.Exception, match="apt-get install") as failure:
        start_postgres_server()
    assert INSTALL_HINT in str(failure.value)


def test_failing_apt_get_fails_with_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, a failing apt-get fails the test with its output and the install command."""
    calls: list[list[str]] = []

    def fake_run(args: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        return subprocess.CompletedProcess(args, 100, "", "E: Unable to locate package postgresql")

    monkeypatch.setattr(postgres, "find_postgres_bin_dir", lambda: None)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name, **_kw: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(pytest.fail.Exception, match="Unable to locate package") as failure:
        start_postgres_server()
    assert INSTALL_HINT in str(failure.value)
    assert calls == [["/usr/bin/apt-get", "update"]]


def test_newest_debian_version_is_preferred() -> None:
    """Versioned bin directories sort numerically, unknown names last."""
    dirs = [Path(f"/usr/lib/postgresql/{v}/bin") for v in ("9.6", "15", "x", "16")]
    ordered = sorted(dirs, key=postgres._version_key, reverse=True)
    assert [d.parent.name for d in ordered] == ["16", "15", "9.6", "x"]
