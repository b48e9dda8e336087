"""Accounts mode: one Unix user per account, kept in step with the accounts (`nephelae ssh sync-accounts`).

An approved account gets a Unix user (the prefix, then its username) whose home is its workspace, in the SSH
group; any other status, or an account that no longer exists, leaves the user locked and expired (files kept).
The users made here carry a marker in their GECOS field, and only those are ever changed. Every call is an argv
list to useradd/usermod/groupadd, never a shell, and names are checked first.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from nephelae.accounts import audit
from nephelae.config import Settings
from nephelae.db.models import Account
from nephelae.errors import ConfigurationError, InvalidInput, NephelaeError
from nephelae.ssh.authorized_keys import unix_login

MARKER = "nephelae account"
UNIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
LOGIN_SHELL = "/bin/bash"
NO_PASSWORD = "*"  # noqa: S105  # no password can match it, yet sshd does not count the user as locked (that is "!")
EXPIRED = "1"  # days since 1970: long past


@dataclass(frozen=True)
class Change:
    """What a sync did to one Unix user: `created`, `enabled`, `disabled`, `unchanged`, or `failed` with a `detail`."""

    login: str
    account: str
    action: str
    detail: str = ""


def sync_accounts(session: Session, settings: Settings, only: str | None = None) -> list[Change]:
    """Bring the Unix users in line with the accounts (all of them, or the account `only`)."""
    query = select(Account).order_by(Account.username)
    accounts = list(session.scalars(query if only is None else query.where(Account.username == only)))
    changes = [_sync_or_fail(settings, account.username, account.status == "approved") for account in accounts]
    if only is None:
        known = {unix_login(settings, account.username) for account in accounts}
        for login, username in managed_users(settings):
            if login not in known:
                changes.append(_sync_or_fail(settings, username, False))
    return changes


def failures(changes: list[Change]) -> str | None:
    """One line naming the accounts a sync could not bring in line, or None."""
    failed = [change for change in changes if change.action == "failed"]
    if not failed:
        return None
    return "; ".join(f"{change.account}: {change.detail}" for change in failed)


def _sync_or_fail(settings: Settings, username: str, enabled: bool) -> Change:
    """One account's sync; a failure is reported, and the others still go on (a cron run must not stop at one)."""
    try:
        return _sync_one(settings, username, enabled)
    except NephelaeError as error:
        return Change(unix_login(settings, username), username, "failed", error.detail)


def managed_users(settings: Settings) -> list[tuple[str, str]]:
    """(login, account) of the Unix users this home's sync made, by their GECOS marker."""
    found = []
    for entry in pwd.getpwall():
        marker, _, username = entry.pw_gecos.rpartition(" ")
        if marker == MARKER and entry.pw_name == unix_login(settings, username):
            found.append((entry.pw_name, username))
    return found


def _sync_one(settings: Settings, username: str, enabled: bool) -> Change:
    login = unix_login(settings, username)
    if not UNIX_NAME.fullmatch(login):
        raise InvalidInput(f"{login!r} cannot be a Unix user name; shorten ssh_user_prefix")
    existing = _lookup(login)
    if existing is not None and existing.pw_gecos != f"{MARKER} {username}":
        raise ConfigurationError(f"the Unix user {login} exists and was not made by Nephelae; it is left alone")
    if not enabled:
        if existing is None:
            return Change(login, username, "unchanged")
        _run(["usermod", "--lock", "--expiredate", EXPIRED, login])
        return Change(login, username, "disabled")
    workspace = settings.workspaces_dir.resolve() / username
    workspace.mkdir(parents=True, exist_ok=True)
    if existing is None:
        _ensure_group(settings.ssh_group)
        _run(
            [
                *("useradd", "--home-dir", str(workspace), "--no-create-home", "--shell", LOGIN_SHELL),
                *("--gid", settings.ssh_group, "--comment", f"{MARKER} {username}", login),
            ]
        )
    _run(["usermod", "--password", NO_PASSWORD, "--expiredate", "", login])
    _give_workspace(workspace, login)
    return Change(login, username, "created" if existing is None else "enabled")


def _give_workspace(workspace: Path, login: str) -> None:
    """The workspace belongs to the user; the home's owner (the platform) keeps access through the group."""
    entry = pwd.getpwnam(login)
    platform_group = workspace.parent.stat().st_gid
    os.chown(workspace, entry.pw_uid, platform_group)
    workspace.chmod(0o2770)


def _ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        _run(["groupadd", "--system", name])


def _lookup(login: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(login)
    except KeyError:
        return None


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise ConfigurationError(f"{argv[0]} is missing; accounts mode needs the shadow utilities (passwd)") from None
    except subprocess.CalledProcessError as error:
        message = (error.stderr or "").strip()[-300:]
        raise ConfigurationError(f"`{' '.join(argv)}` failed ({message}); accounts mode must run as root") from None


def follow_account(session: Session, settings: Settings, username: str, *, actor: str) -> list[Change]:
    """After a decision on `username`: in accounts mode, bring its Unix user in line (audited); else nothing."""
    if settings.ssh_mode != "accounts":
        return []
    changes = sync_accounts(session, settings, only=username)
    record_changes(session, changes, actor)
    failed = [change for change in changes if change.action == "failed"]
    if failed:
        raise ConfigurationError(failed[0].detail)
    return changes


def record_changes(session: Session, changes: list[Change], actor: str) -> None:
    """Audit what a sync did (failures included, with their reason), and commit."""
    for change in changes:
        if change.action != "unchanged":
            details = {"login": change.login} | ({"reason": change.detail} if change.detail else {})
            audit.record(session, f"ssh.user_{change.action}", actor=actor, subject=change.account, **details)
    session.commit()
