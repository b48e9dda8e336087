"""`nephelae whoami`: who the platform takes you for, through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nephelae.db import session_factory
from tests.api.support import People
from tests.cli.test_cli import run
from tests.support.server import RunningServer


def test_whoami_shows_the_account_as_the_server_sees_it(
    server: RunningServer, engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = People(session_factory(engine)).account("alice", allow=("127.0.0.0/8",))
    monkeypatch.setenv("NEPHELAE_URL", server.url)
    monkeypatch.setenv("NEPHELAE_TOKEN", token)
    code, out, err = run(capsys, "whoami")
    assert code == 0, err
    assert out.splitlines() == [
        "alice (Alice Martin, Ifremer / CERSAT)",
        "role: user, status: approved",
        "projects: none",
        "allowed ranges: 127.0.0.0/8",
        "seen from: 127.0.0.1",
    ]
    code, out, _ = run(capsys, "whoami", "--json")
    me = json.loads(out)
    assert code == 0 and me["username"] == "alice" and me["address"] == "127.0.0.1"

    monkeypatch.setenv("NEPHELAE_TOKEN", "nph_not-a-token")
    code, out, err = run(capsys, "whoami")
    assert code == 1 and out == "" and err.startswith("unauthenticated: unknown token") and err.count("\n") == 1


def test_whoami_without_a_token_says_how_to_get_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEPHELAE_HOME", str(tmp_path))
    code, _, err = run(capsys, "whoami")
    assert code == 1 and err.startswith("unauthenticated: set NEPHELAE_TOKEN to your API token")
