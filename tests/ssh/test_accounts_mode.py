"""Accounts mode: each approved account is a real Unix user, made, disabled and enabled again by the admin commands.

Real users (a unique prefix, deleted after), a real sshd configured by `nephelae ssh sshd-config`.
"""

from __future__ import annotations

import grp
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from nephelae.accounts import keys
from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, session_factory, upgrade
from nephelae.db.models import Account
from nephelae.ssh.unix_users import MARKER
from tests.api.support import People
from tests.cli.test_admin import Admin
from tests.ssh.sshd import ensure_openssh, running_sshd
from tests.ssh.support import KeyPair, make_key

pytestmark = pytest.mark.timeout(600)


@dataclass
class Site:
    settings: Settings
    base: Path
    key: KeyPair
    prefix: str

    @property
    def login(self) -> str:
        return f"{self.prefix}alice"


@pytest.fixture
def site() -> Iterator[Site]:
    """A home in accounts mode with alice pending, her key registered; the Unix users and group removed after."""
    ensure_openssh()
    prefix = f"t{uuid.uuid4().hex[:5]}-"
    base = Path(tempfile.mkdtemp(prefix="nephelae-accounts-"))
    base.chmod(0o711)  # the users reach their workspaces, and nothing else of the home
    home = base / "home"
    prepare_home(load_settings(home))
    (home / "nephelae.toml").write_text(
        f'ssh_mode = "accounts"\nssh_user_prefix = "{prefix}"\nssh_group = "{prefix}users"\n'
    )
    settings = load_settings(home)
    engine = make_engine(settings.database)
    upgrade(engine)
    People(session_factory(engine)).account("alice", status="pending")
    key_dir = base / "keys"
    key_dir.mkdir(mode=0o700)
    key = make_key(key_dir, "alice")
    with session_factory(engine)() as session:
        keys.add_key(session, "alice", key.public, actor="setup")
    engine.dispose()
    home.chmod(0o711)
    (home / "nephelae.db").chmod(0o600)
    try:
        yield Site(settings, base, key, prefix)
    finally:
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(prefix):
                subprocess.run(["userdel", entry.pw_name], check=False, capture_output=True)
        subprocess.run(["groupdel", f"{prefix}users"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def shadow(login: str) -> tuple[str, int]:
    """The password field and the expiry day (-1: none) in /etc/shadow."""
    fields = subprocess.run(["getent", "shadow", login], capture_output=True, text=True, check=True).stdout.split(":")
    return fields[1], int(fields[7] or -1)


def test_decisions_provision_disable_and_enable_a_real_unix_user(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = Admin(capsys, site.settings.home)
    with pytest.raises(KeyError):
        pwd.getpwnam(site.login)  # pending: no Unix user yet
    code, _, err = operator("admin", "accounts", "approve", "alice")
    assert code == 0, err
    user = pwd.getpwnam(site.login)
    workspace = site.settings.workspaces_dir.resolve() / "alice"
    assert (user.pw_dir, user.pw_shell, user.pw_gecos) == (str(workspace), "/bin/bash", f"{MARKER} alice")
    assert grp.getgrgid(user.pw_gid).gr_name == f"{site.prefix}users"
    assert workspace.stat().st_uid == user.pw_uid and workspace.stat().st_mode & 0o7777 == 0o2770
    assert shadow(site.login) == ("*", -1)  # no password to guess, not locked, no expiry

    with running_sshd(site.settings, "root", site.base) as sshd:
        assert "AllowGroups " + f"{site.prefix}users" in sshd.config and "PermitTTY yes" in sshd.config
        probe = 'id -un; pwd; echo "$NEPHELAE_URL"; test -n "$NEPHELAE_TOKEN" && echo token; echo "$PATH"'
        logged_in = sshd.ssh(site.login, site.key.private, probe)
        assert logged_in.returncode == 0, logged_in.stderr + sshd.log_tail()
        login, cwd, url, token, path = logged_in.stdout.splitlines()
        assert (login, cwd, url, token) == (site.login, str(workspace), site.settings.url, "token")
        assert path.split(":")[0] == str(Path(sys.executable).parent)  # the `nephelae` CLI and the toolbox
        assert sshd.ssh(site.login, site.key.private, "id", source="127.0.0.2").returncode == 255  # from=

        assert operator("admin", "accounts", "suspend", "alice")[0] == 0
        password, expire = shadow(site.login)
        assert password.startswith("!") and expire == 1  # locked and expired: no way in, files kept
        refused = sshd.ssh(site.login, site.key.private, "id")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr

        assert operator("admin", "accounts", "reinstate", "alice")[0] == 0
        assert shadow(site.login) == ("*", -1)
        assert sshd.ssh(site.login, site.key.private, "true").returncode == 0

    engine = make_engine(site.settings.database)  # an account removed from the database...
    with session_factory(engine)() as session:
        session.execute(delete(Account).where(Account.username == "alice"))
        session.commit()
    engine.dispose()
    synced = operator.json("ssh", "sync-accounts")  # ... has its Unix user disabled by the next sync
    assert synced == [{"login": site.login, "account": "alice", "action": "disabled"}]
    assert shadow(site.login)[0].startswith("!")
    assert workspace.is_dir()


def test_a_unix_user_not_made_by_nephelae_is_left_alone(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    subprocess.run(["useradd", "--system", "--no-create-home", site.login], check=True, capture_output=True)
    operator = Admin(capsys, site.settings.home)
    error = operator.fails("configuration_error: the Unix user", "admin", "accounts", "approve", "alice")
    assert "was not made by Nephelae; it is left alone" in error
    assert pwd.getpwnam(site.login).pw_gecos == ""


def test_a_sync_goes_on_past_an_account_it_cannot_bring_in_line(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    subprocess.run(["useradd", "--system", "--no-create-home", site.login], check=True, capture_output=True)
    engine = make_engine(site.settings.database)
    with session_factory(engine)() as session:
        session.execute(update(Account).where(Account.username == "alice").values(status="approved"))
        session.commit()
    People(session_factory(engine)).account("bob")  # approved, after alice in the sync's order
    engine.dispose()
    operator = Admin(capsys, site.settings.home)
    error = operator.fails(
        "configuration_error: some Unix users could not be synced: alice: the Unix user", "ssh", "sync-accounts"
    )
    assert "was not made by Nephelae" in error
    assert pwd.getpwnam(f"{site.prefix}bob").pw_gecos == f"{MARKER} bob"  # bob's user was made all the same
    assert pwd.getpwnam(site.login).pw_gecos == ""
