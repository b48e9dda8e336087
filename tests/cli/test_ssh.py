"""`nephelae ssh ...` in-process: the gateway shell against the API, sshd-config, sync-accounts.

The same commands under a real sshd are in tests/ssh/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import ApiToken, AuditEvent
from nephelae.ssh.sshd import wrapper_path
from nephelae.workspaces import workspace_lock
from tests.api.support import People
from tests.cli.test_cli import run

Runner = tuple[pytest.CaptureFixture[str], pytest.MonkeyPatch]


@pytest.fixture
def home_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    assert settings.database_url is not None
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", settings.database_url)
    monkeypatch.chdir(tmp_path)  # the gateway moves into the workspace; put the test back after
    for name in ("NEPHELAE_URL", "NEPHELAE_TOKEN"):  # the gateway sets them for its command; restored after
        monkeypatch.setenv(name, "unset")
    return settings


def gateway(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, settings: Settings, command: str, client: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("SSH_CONNECTION", f"{client} 50123 127.0.0.1 2222")
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", command)
    return run(capsys, "ssh", "shell", "--account", "alice", "--home", str(settings.home))


def test_the_gateway_runs_a_command_as_the_account_seen_from_the_ssh_client(
    home_env: Settings, engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    People(session_factory(engine)).account("alice", allow=("10.2.0.0/16",))
    code, out, err = gateway(capsys, monkeypatch, home_env, "whoami --json", "10.2.3.4")
    assert code == 0, err
    assert json.loads(out)["username"] == "alice" and json.loads(out)["address"] == "10.2.3.4"
    assert Path.cwd() == home_env.workspaces_dir.resolve() / "alice"
    # The API's own check applies to the SSH client's address: it is refused, and says why.
    code, out, err = gateway(capsys, monkeypatch, home_env, "whoami", "192.0.2.7")
    assert code == 1 and out == ""
    assert err.startswith("forbidden: IP 192.0.2.7 is not in the allowed ranges of account alice")
    code, _, err = gateway(capsys, monkeypatch, home_env, "admin accounts list", "10.2.3.4")
    assert code == 1 and err.startswith("forbidden: command 'admin' is not allowed here")
    code, _, err = gateway(capsys, monkeypatch, home_env, "datasets add mine / --pattern '*' --public", "10.2.3.4")
    assert code == 1 and err.startswith("forbidden: `datasets add` is not allowed here")
    with session_factory(engine)() as session:
        kinds = [event.kind for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert session.scalars(select(ApiToken).where(ApiToken.name.startswith("ssh-"))).all() == []
    assert kinds.count("ssh.command") == 1 and kinds.count("ssh.refused") == 2
    assert "access.refused" in kinds


def test_the_shell_runs_only_inside_an_ssh_session(
    home_env: Settings, engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    People(session_factory(engine)).account("alice")
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "whoami")
    code, _, err = run(capsys, "ssh", "shell", "--account", "alice", "--home", str(home_env.home))
    assert code == 1 and err.startswith("forbidden: `nephelae ssh shell` runs only as the forced command")
    code, _, err = gateway(capsys, monkeypatch, home_env, "whoami", "not-an-address")
    assert code == 1 and err.startswith("forbidden: ")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sshd_config_refuses_a_wrapper_sshd_would_not_run(
    home_env: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    unsafe = tmp_path / "wrappers"  # under /tmp: world-writable above it
    code, out, err = run(capsys, "ssh", "sshd-config", "--home", str(home_env.home), "--wrapper-dir", str(unsafe))
    assert code == 1 and out == ""
    assert err.startswith("configuration_error: sshd will refuse ") and "must be owned by root" in err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sshd_config_prints_a_complete_config(home_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ssh", "sshd-config", "--home", str(home_env.home), "--port", "2022")
    try:
        assert code == 0, err
        wrapper = wrapper_path(home_env)
        assert f"AuthorizedKeysCommand {wrapper} %u %t %k\n" in out and "\nPort 2022\n" in out
        assert wrapper.stat().st_uid == 0 and wrapper.stat().st_mode & 0o777 == 0o755
        assert f"NEPHELAE_HOME={home_env.home.resolve()}" in wrapper.read_text()
        assert "AllowUsers nephelae\nPermitRootLogin no\n" in out
        host_key = home_env.home.resolve() / "ssh" / "ssh_host_ed25519_key"
        assert f"HostKey {host_key}\n" in out and host_key.stat().st_mode & 0o077 == 0
        assert "AuthorizedKeysCommandUser root\n" in out  # the home's owner
    finally:
        wrapper_path(home_env).unlink(missing_ok=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sync_accounts_is_for_accounts_mode(home_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "ssh", "sync-accounts", "--home", str(home_env.home))
    assert code == 1 and err.startswith("configuration_error: ssh_mode is `gateway`")


def test_the_gateway_reads_and_writes_no_file_while_a_script_runs(
    home_env: Settings, engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script could swap a link in after the gateway's check, and the CLI would follow it as the service login."""
    People(session_factory(engine)).account("alice", allow=("10.2.0.0/16",))
    with workspace_lock(home_env.workspaces_dir.resolve(), "alice", shared=True):  # `nephelae run` of alice
        for command in ("files get a.nc out.nc", "files put spec.yaml", "campaigns submit spec.yaml",
                        "analysis map demo -v sst -o map.png"):  # fmt: skip
            code, out, err = gateway(capsys, monkeypatch, home_env, command, "10.2.3.4")
            assert code == 1 and out == ""
            assert err.startswith("conflict: a script of yours is running in your workspace"), err
        code, out, err = gateway(capsys, monkeypatch, home_env, "whoami --json", "10.2.3.4")
        assert code == 0 and json.loads(out)["username"] == "alice", err


def test_the_gateway_writes_nothing_outside_the_workspace_whatever_the_spelling(
    home_env: Settings, engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    People(session_factory(engine)).account("alice", allow=("10.2.0.0/16",))
    settings_file = home_env.home / "nephelae.toml"
    before = settings_file.read_bytes() if settings_file.exists() else None
    for command in (
        f"files get -- --time {settings_file}",  # click: REMOTE `--time`, LOCAL the home's settings
        "analysis timeseries demo -v sst --format csv -o../../nephelae.toml",  # -o with its value glued on
        "analysis timeseries demo -v --time --format csv -o../../nephelae.toml",
    ):
        code, out, err = gateway(capsys, monkeypatch, home_env, command, "10.2.3.4")
        assert code == 1 and out == "" and err.startswith("forbidden: argument"), (command, err)
    assert (settings_file.read_bytes() if settings_file.exists() else None) == before
