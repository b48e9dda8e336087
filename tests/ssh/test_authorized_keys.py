"""sshd's AuthorizedKeysCommand: the line for a key, or nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from nephelae.accounts import keys, registry, tokens
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import ApiToken
from nephelae.ssh.authorized_keys import key_line
from tests.api.support import SECOND_ADDRESS, People, assert_problem, bearer, client_from
from tests.ssh.support import KeyPair, make_key
from tests.support.server import serve_in_thread


@pytest.fixture
def alice_key(engine: Engine, tmp_path: Path) -> KeyPair:
    People(session_factory(engine)).account("alice", allow=("127.0.0.1/32", "10.2.0.0/16"))
    pair = make_key(tmp_path, "alice")
    with session_factory(engine)() as session:
        keys.add_key(session, "alice", pair.public, actor="setup")
    return pair


def line_for(engine: Engine, settings: Settings, pair: KeyPair, login: str = "nephelae") -> str | None:
    with session_factory(engine)() as session:
        return key_line(session, settings, login, pair.key_type, pair.key_data)


def test_gateway_line_forces_the_shell_of_the_keys_account(
    settings: Settings, engine: Engine, alice_key: KeyPair
) -> None:
    line = line_for(engine, settings, alice_key)
    assert line is not None
    options, key_type, key_data = line.rsplit(" ", 2)
    assert (key_type, key_data) == (alice_key.key_type, alice_key.key_data)
    assert options.startswith('restrict,from="127.0.0.1/32,10.2.0.0/16",expiry-time="')
    home = settings.home.resolve()
    assert f'command="{sys.executable} -m nephelae ssh shell --home {home} --account alice"' in options
    # The token of People expires in a day: so does SSH access.
    expiry = dt.datetime.strptime(options.split('expiry-time="')[1][:12], "%Y%m%d%H%M").replace(tzinfo=dt.UTC)
    assert dt.timedelta(hours=23) < expiry - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)


def test_no_line_for_the_wrong_login_or_an_unknown_key(
    settings: Settings, engine: Engine, alice_key: KeyPair, tmp_path: Path
) -> None:
    assert line_for(engine, settings, alice_key, login="root") is None
    assert line_for(engine, settings, alice_key, login="alice") is None  # gateway mode: one login only
    assert line_for(engine, settings, make_key(tmp_path, "stranger")) is None
    with session_factory(engine)() as session:
        assert key_line(session, settings, "nephelae", "ssh-rsa", alice_key.key_data) is None  # type mismatch
        assert key_line(session, settings, "nephelae", "ssh-ed25519", "!!not base64") is None


def test_no_line_when_the_account_may_not_connect(settings: Settings, engine: Engine, alice_key: KeyPair) -> None:
    with session_factory(engine)() as session:
        registry.decide(session, "alice", "suspend", actor="op")
    assert line_for(engine, settings, alice_key) is None
    with session_factory(engine)() as session:
        registry.decide(session, "alice", "reinstate", actor="op")
        for record in session.scalars(select(ApiToken)):
            record.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        session.commit()
    assert line_for(engine, settings, alice_key) is None  # every token expired: so has SSH access
    with session_factory(engine)() as session:
        tokens.create_token(session, "alice", name="forever", expires_days=None, actor="op")
    line = line_for(engine, settings, alice_key)
    assert line is not None and "expiry-time" not in line
    with session_factory(engine)() as session:
        account = registry.get_account(session, "alice")
        account.networks.clear()
        session.commit()
    assert line_for(engine, settings, alice_key) is None  # no range: no connection at all
    with session_factory(engine)() as session:
        keys.remove_key(session, "alice", keys.fingerprint(alice_key.key_data), actor="op")
    assert line_for(engine, settings, alice_key) is None


def test_accounts_mode_serves_a_login_environment_with_an_entry_point_token(
    settings: Settings, engine: Engine, alice_key: KeyPair
) -> None:
    accounts = settings.model_copy(update={"ssh_mode": "accounts", "ssh_user_prefix": "np-"})
    assert line_for(engine, accounts, alice_key, login="alice") is None  # the Unix user is np-alice
    line = line_for(engine, accounts, alice_key, login="np-alice")
    assert line is not None and "command=" not in line
    assert line.startswith('restrict,from="127.0.0.1/32,10.2.0.0/16",expiry-time=')
    assert ",pty," in line and f'environment="NEPHELAE_URL={settings.url}"' in line
    assert f'environment="PATH={Path(sys.executable).parent}:' in line
    token = line.split('environment="NEPHELAE_TOKEN=')[1].split('"')[0]
    entry_point_only = settings.model_copy(update={"ssh_entry_addresses": ["127.0.0.1/32"]})
    with serve_in_thread(entry_point_only) as server:
        # From the entry point the session's token works...
        me = httpx.get(f"{server.url}/api/v1/me", headers=bearer(token), timeout=10)
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "alice" and me.json()["address"] == "127.0.0.1"
        # ... from anywhere else it is refused, and once the account is suspended, everywhere.
        with client_from(SECOND_ADDRESS, server.url) as elsewhere:
            refused = elsewhere.get("/api/v1/me", headers=bearer(token))
        assert "works only on the SSH entry point" in assert_problem(refused, 403, "forbidden")
        with session_factory(engine)() as session:
            registry.decide(session, "alice", "suspend", actor="op")
        suspended = httpx.get(f"{server.url}/api/v1/me", headers=bearer(token), timeout=10)
        assert "alice is suspended" in assert_problem(suspended, 403, "forbidden")
    with session_factory(engine)() as session:
        minted = session.scalars(select(ApiToken).where(ApiToken.ssh_session)).all()
        assert [(record.name[:4], record.ssh_session) for record in minted] == [("ssh-", True)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about the process, not the database
def test_the_command_prints_the_line_and_fails_closed(settings: Settings, alice_key: KeyPair, tmp_path: Path) -> None:
    arguments = ["authorized-keys", "nephelae", alice_key.key_type, alice_key.key_data]
    assert settings.database_url is not None
    env = {"PATH": "/usr/bin:/bin", "NEPHELAE_HOME": str(settings.home), "NEPHELAE_DATABASE_URL": settings.database_url}

    def run(module: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", *module.split(), *arguments]
        return subprocess.run(command, capture_output=True, text=True, env=environment, check=False)

    for module in ("nephelae ssh", "nephelae.ssh"):  # the command of the contract, and the fast one sshd runs
        served = run(module, env)
        assert served.returncode == 0 and served.stdout.startswith("restrict,") and served.stdout.count("\n") == 1
    down = env | {"NEPHELAE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/nothing"}
    failed = run("nephelae.ssh", down)
    assert failed.returncode == 1 and failed.stdout == "" and "no key served" in failed.stderr
    failed = run("nephelae.ssh", {"PATH": "/usr/bin:/bin", "NEPHELAE_HOME": str(tmp_path / "nowhere")})
    assert failed.returncode == 1 and failed.stdout == "" and "no database at" in failed.stderr
    assert not (tmp_path / "nowhere").exists()
