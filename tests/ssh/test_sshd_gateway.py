"""The SSH gateway through a real OpenSSH server on loopback, configured by `nephelae ssh sshd-config`.

One shared service login (a throw-away Unix user owning the home); each key identifies its account; sshd asks
`nephelae ssh authorized-keys` (through the root-owned wrapper) and runs the forced `nephelae ssh shell`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from nephelae.accounts import keys, registry
from nephelae.config import load_settings, prepare_home
from nephelae.db import make_engine, session_factory, upgrade
from nephelae.db.models import ApiToken, AuditEvent
from tests.api.support import People
from tests.api.test_datasets import build_catalog
from tests.ssh.sshd import RunningSshd, ensure_openssh, running_sshd
from tests.ssh.support import KeyPair, make_key

pytestmark = pytest.mark.timeout(600)
REFUSED = "Permission denied (publickey)"


@dataclass
class Gateway:
    sshd: RunningSshd
    login: str
    home: Path
    keys: dict[str, KeyPair]

    def run(self, who: str, *command: str, source: str | None = None) -> tuple[int, str, str]:
        result = self.sshd.ssh(self.login, self.keys[who].private, *command, source=source)
        return result.returncode, result.stdout, result.stderr

    def events(self, kind: str) -> list[AuditEvent]:
        engine = make_engine(load_settings(self.home).database)
        try:
            with session_factory(engine)() as session:
                return list(session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)))
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    """sshd for a home whose gateway login is root.

    A dedicated login owning the home is the way to run it, but this container's Python lives under /root (mode
    0700), which no other user can run; so the tests use root, which the config lets run only forced commands.
    """
    ensure_openssh()
    base = Path(tempfile.mkdtemp(prefix="nephelae-ssh-"))
    home = base / "home"
    settings = load_settings(home)
    prepare_home(settings)
    (home / "nephelae.toml").write_text('ssh_login = "root"\n')  # sshd gives the forced command no environment
    settings = load_settings(home)
    engine = make_engine(settings.database)
    upgrade(engine)
    build_catalog(engine)  # alice (approved, 127.0.0.1) reads sst-l4, sst-l2p and bathymetry
    people = People(session_factory(engine))
    for name in ("carol", "dave", "erin"):
        people.account(name)
    key_dir = base / "keys"
    key_dir.mkdir(mode=0o700)
    pairs = {name: make_key(key_dir, name) for name in ("alice", "carol", "dave", "erin")}
    with session_factory(engine)() as session:
        for name, pair in pairs.items():
            keys.add_key(session, name, pair.public, actor="setup")
    engine.dispose()
    with running_sshd(settings, "root", base) as sshd:
        yield Gateway(sshd, "root", home, pairs)
    shutil.rmtree(base, ignore_errors=True)


def test_the_printed_config_is_what_sshd_needs(gateway: Gateway) -> None:
    config = gateway.sshd.config
    for line in ("AuthorizedKeysFile none", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                 "AllowUsers root", "PermitUserEnvironment no", "DisableForwarding yes", "PermitTTY no",
                 "PermitRootLogin forced-commands-only", "AuthorizedKeysCommandUser root"):  # fmt: skip
        assert f"\n{line}\n" in config
    wrapper = config.split("AuthorizedKeysCommand ")[1].split()[0]
    assert wrapper.startswith("/usr/local/lib/nephelae/authorized-keys-")
    assert f"HostKey {gateway.home.resolve()}/ssh/ssh_host_ed25519_key" in config


def test_an_approved_key_runs_user_commands_as_its_account(gateway: Gateway) -> None:
    status, out, err = gateway.run("alice", "nephelae", "whoami")
    assert status == 0, err + gateway.sshd.log_tail()
    assert "alice (Alice Martin, Ifremer / CERSAT)" in out and "seen from: 127.0.0.1" in out
    status, out, err = gateway.run("alice", "datasets", "list", "--json")
    assert status == 0, err
    assert [dataset["id"] for dataset in json.loads(out)] == ["bathymetry", "sst-l2p", "sst-l4"]
    status, out, err = gateway.run("alice", "search", "sst-l4", "--time", "'2020-01-02/..'", "--json")
    assert status == 0, err
    found = json.loads(out)
    assert found and all(granule["time_end"] >= "2020-01-02" for granule in found)
    commands = [event.detail["command"] for event in gateway.events("ssh.command")]
    assert "nephelae whoami" in commands and "datasets list --json" in commands
    with session_factory(make_engine(load_settings(gateway.home).database))() as session:
        minted = session.scalars(select(ApiToken).where(ApiToken.name.startswith("ssh-"))).all()
    assert minted == []  # each command's token is gone when it ends


def test_the_same_key_from_an_address_outside_the_ranges_is_refused(gateway: Gateway) -> None:
    status, out, err = gateway.run("alice", "whoami", source="127.0.0.2")
    assert status == 255 and REFUSED in err and out == ""


@pytest.mark.parametrize(
    ("command", "why"),
    [
        (["bash", "-c", "id"], "forbidden: command 'bash' is not allowed here"),
        (["whoami;", "id"], "forbidden: command 'whoami;' is not allowed here"),
        (["$(id)"], "forbidden: command '$(id)' is not allowed here"),
        (["whoami\nid"], "forbidden: newlines and control characters are refused"),
        (["campaigns", "submit", "/etc/passwd"], "leads outside your workspace"),
        ([], "forbidden: this entry point gives no interactive shell"),
    ],
)
def test_anything_but_an_allowed_command_runs_nothing(gateway: Gateway, command: list[str], why: str) -> None:
    status, out, err = gateway.run("alice", *command)
    assert status == 1 and why in err
    assert "uid=" not in out and out == ""
    assert any(event.detail["command"] == " ".join(command) for event in gateway.events("ssh.refused"))


def test_suspended_expired_and_removed_keys_are_refused(gateway: Gateway) -> None:
    assert gateway.run("erin", "whoami")[0] == 0
    engine = make_engine(load_settings(gateway.home).database)
    with session_factory(engine)() as session:
        registry.decide(session, "carol", "suspend", actor="op")
        for record in session.scalars(select(ApiToken).join(ApiToken.account).where(ApiToken.name == "laptop")):
            if record.account.username == "dave":
                record.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        session.commit()
        keys.remove_key(session, "erin", keys.fingerprint(gateway.keys["erin"].key_data), actor="op")
    engine.dispose()
    for who in ("carol", "dave", "erin"):
        status, out, err = gateway.run(who, "whoami")
        assert status == 255 and REFUSED in err and out == "", who
