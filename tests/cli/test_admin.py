"""`nephelae admin`: operator commands on the home's database, on SQLite and PostgreSQL, run in-process."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from nephelae.accounts import Registration, authenticate_token
from nephelae.accounts.registry import register
from nephelae.cli.admin_home import operator_actor
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.errors import AuthenticationRequired
from tests.cli.test_cli import run


@dataclass
class Admin:
    """`nephelae ... --home HOME` run in-process against one home."""

    capsys: pytest.CaptureFixture[str]
    home: Path

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        return run(self.capsys, *argv, "--home", str(self.home))

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)

    def fails(self, expected: str, *argv: str) -> str:
        """Run a command that must fail with `expected` (a `code: ...` prefix) in one line, without a traceback."""
        code, out, err = self(*argv)
        assert code == 1, (out, err)
        assert err.startswith(expected), err
        assert err.count("\n") == 1 and "Traceback" not in out + err
        return err


@pytest.fixture
def admin(capsys: pytest.CaptureFixture[str], settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Admin:
    """A migrated home on each backend; wide output so that table cells are not wrapped."""
    assert settings.database_url is not None
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COLUMNS", "250")
    return Admin(capsys, settings.home)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


def register_account(session: Session, username: str, project: str = "glaciers") -> None:
    register(
        session,
        Registration(
            username=username,
            email=f"{username}@example.org",
            full_name=username.title(),
            affiliation="University of Tromso",
            project=project,
            justification="Ice-sheet melt studies.",
        ),
    )


def test_accounts_list_and_decisions(admin: Admin, session: Session) -> None:
    register_account(session, "alice")
    register_account(session, "bob", project="oceans")
    listed = admin.json("admin", "accounts", "list")
    assert [(a["username"], a["status"], a["role"]) for a in listed] == [
        ("alice", "pending", "user"),
        ("bob", "pending", "user"),
    ]
    assert listed[0]["requested_project"] == "glaciers" and listed[0]["email"] == "alice@example.org"
    code, out, _ = admin("admin", "accounts", "list")
    assert code == 0
    assert "alice" in out and "bob" in out and "University of Tromso" in out and "oceans" in out

    approved = admin.json("admin", "accounts", "approve", "alice", "--allow", "10.2.3.4/24", "--allow", "2001:db8::/48")
    assert approved["status"] == "approved"
    assert approved["allowed_networks"] == ["10.2.3.0/24", "2001:db8::/48"]
    assert approved["decided_by"] == operator_actor()
    _, out, _ = admin("admin", "accounts", "reject", "bob")
    assert "Rejected bob" in out
    admin.fails("conflict: cannot reinstate bob: the account is rejected", "admin", "accounts", "reinstate", "bob")
    assert admin.json("admin", "accounts", "suspend", "alice")["status"] == "suspended"
    assert admin.json("admin", "accounts", "reinstate", "alice")["status"] == "approved"
    assert [a["username"] for a in admin.json("admin", "accounts", "list", "--status", "rejected")] == ["bob"]
    admin.fails("invalid_input: unknown status 'gone'", "admin", "accounts", "list", "--status", "gone")

    assert admin.json("admin", "accounts", "role", "alice", "admin")["role"] == "admin"
    admin.fails("invalid_input: unknown role 'root'", "admin", "accounts", "role", "alice", "root")
    shown = admin.json("admin", "accounts", "show", "alice")
    assert shown["justification"] == "Ice-sheet melt studies." and shown["projects"] == []
    code, out, _ = admin("admin", "accounts", "show", "alice")
    assert code == 0 and "2001:db8::/48" in out and "admin" in out


def test_a_bad_range_leaves_the_account_undecided(admin: Admin, session: Session) -> None:
    register_account(session, "alice")
    admin.fails(
        "invalid_input: '10.0.0.300/8' is not an IP address",
        "admin",
        "accounts",
        "approve",
        "alice",
        "--allow",
        "10.0.0.300/8",
    )
    assert admin.json("admin", "accounts", "show", "alice")["status"] == "pending"


def test_allow_and_deny_ip(admin: Admin, session: Session) -> None:
    register_account(session, "alice")
    assert admin.json("admin", "allow-ip", "alice", "192.0.2.7")["allowed_networks"] == ["192.0.2.7/32"]
    code, out, _ = admin("admin", "allow-ip", "alice", "2001:db8:1::/64")
    assert code == 0 and "alice may now connect from 2001:db8:1::/64" in out
    admin.fails(
        "invalid_input: 'nonsense' is not an IP address or CIDR range", "admin", "allow-ip", "alice", "nonsense"
    )
    admin.fails("conflict: 192.0.2.7/32 is already allowed", "admin", "allow-ip", "alice", "192.0.2.7/32")
    assert admin.json("admin", "deny-ip", "alice", "192.0.2.7")["allowed_networks"] == ["2001:db8:1::/64"]
    admin.fails("not_found: 192.0.2.7/32 is not an allowed range of alice", "admin", "deny-ip", "alice", "192.0.2.7")


def test_tokens_are_shown_once_authenticate_and_can_be_revoked(
    admin: Admin, session: Session, settings: Settings
) -> None:
    register_account(session, "alice")
    admin.json("admin", "accounts", "approve", "alice", "--allow", "127.0.0.0/8")
    created = admin.json("admin", "tokens", "create", "alice", "--name", "laptop")
    assert created.keys() == {"username", "name", "token", "expires_at"}
    expires = dt.datetime.fromisoformat(created["expires_at"]) - dt.datetime.now(dt.UTC)
    assert abs(expires - dt.timedelta(days=settings.token_expiry_days)) < dt.timedelta(minutes=5)
    assert authenticate_token(session, created["token"], "127.0.0.1").username == "alice"

    code, out, err = admin("admin", "tokens", "create", "alice", "--name", "script", "--no-expiry")
    token = out.strip()
    assert code == 0 and out.count("\n") == 1 and token.startswith("nph_")
    assert "will not be shown again" in err and "never expires" in err
    assert authenticate_token(session, token, "127.0.0.1").username == "alice"

    code, table, _ = admin("admin", "tokens", "list", "alice")
    listed = admin.json("admin", "tokens", "list", "alice")
    assert code == 0 and "laptop" in table and "script" in table
    assert [(t["name"], t["state"]) for t in listed] == [("laptop", "active"), ("script", "active")]
    for secret in (created["token"], token):
        assert secret not in table + json.dumps(listed)

    assert admin.json("admin", "tokens", "revoke", "alice", "laptop")["state"] == "revoked"
    with pytest.raises(AuthenticationRequired, match="revoked"):
        authenticate_token(session, created["token"], "127.0.0.1")
    admin.fails("not_found: alice has no token named 'gone'", "admin", "tokens", "revoke", "alice", "gone")
    admin.fails(
        "conflict: alice already has a token named 'script'", "admin", "tokens", "create", "alice", "--name", "script"
    )
    admin.fails("invalid_input: --expires must be 1 to", "admin", "tokens", "create", "alice", "--expires", "0")


def test_a_token_for_a_pending_account_comes_with_a_warning(admin: Admin, session: Session) -> None:
    register_account(session, "alice")
    code, out, err = admin("admin", "tokens", "create", "alice", "--expires", "7")
    assert code == 0 and out.startswith("nph_")
    assert "warning: alice is pending" in err


def _make_key_pair(directory: Path) -> tuple[Path, Path]:
    """An ed25519 key pair, by ssh-keygen when installed, else by `cryptography` in the same formats."""
    private = directory / "k"
    if shutil.which("ssh-keygen"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", str(private)], check=True
        )
    else:
        key = Ed25519PrivateKey.generate()
        private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
        public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        private.with_suffix(".pub").write_bytes(public + b" alice@laptop\n")
    return private, private.with_suffix(".pub")


def test_ssh_keys(admin: Admin, session: Session, tmp_path: Path) -> None:
    register_account(session, "alice")
    private, public = _make_key_pair(tmp_path)
    added = admin.json("admin", "keys", "add", "alice", str(public))
    assert added["key_type"] == "ssh-ed25519" and added["comment"] == "alice@laptop"
    if shutil.which("ssh-keygen"):
        listing = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True, check=True)
        assert listing.stdout.split()[1] == added["fingerprint"]
    assert [k["fingerprint"] for k in admin.json("admin", "keys", "list", "alice")] == [added["fingerprint"]]
    code, out, _ = admin("admin", "keys", "list", "alice")
    assert code == 0 and added["fingerprint"] in out

    err = admin.fails(f"invalid_input: {private} is a private key", "admin", "keys", "add", "alice", str(private))
    assert ".pub" in err
    garbage = tmp_path / "garbage.pub"
    for text, expected in [
        ("garbage\n", "invalid_input: not an SSH public key"),
        ("ssh-ed25519 AAAA%%%% x\n", "invalid_input: the SSH public key's base64 part is damaged"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP\n", "invalid_input: unsupported SSH key type 'ssh-dss'"),
    ]:
        garbage.write_text(text)
        admin.fails(expected, "admin", "keys", "add", "alice", str(garbage))
    garbage.write_bytes(b"\xff\xfe\x00binary")
    admin.fails("invalid_input: ", "admin", "keys", "add", "alice", str(garbage))
    admin.fails("invalid_input: cannot read", "admin", "keys", "add", "alice", str(tmp_path / "missing.pub"))
    admin.fails("conflict: key SHA256:", "admin", "keys", "add", "alice", str(public))

    code, out, _ = admin("admin", "keys", "remove", "alice", added["fingerprint"])
    assert code == 0 and "Removed key" in out
    assert admin.json("admin", "keys", "list", "alice") == []
    admin.fails("not_found: alice has no key", "admin", "keys", "remove", "alice", added["fingerprint"])


def test_projects(admin: Admin, session: Session) -> None:
    register_account(session, "alice")
    assert admin.json("admin", "projects", "create", "glaciers")["members"] == []
    admin.json("admin", "projects", "add-member", "glaciers", "alice")
    project = admin.json("admin", "projects", "add-dataset", "glaciers", "sentinel3-lst")
    assert (project["members"], project["datasets"]) == (["alice"], ["sentinel3-lst"])
    assert [p["name"] for p in admin.json("admin", "projects", "list")] == ["glaciers"]
    code, out, _ = admin("admin", "projects", "list")
    assert code == 0 and "glaciers" in out and "sentinel3-lst" in out
    assert admin.json("admin", "accounts", "show", "alice")["projects"] == ["glaciers"]
    admin.fails("conflict: project 'glaciers' already exists", "admin", "projects", "create", "glaciers")
    admin.fails("not_found: no project named 'oceans'", "admin", "projects", "add-member", "oceans", "alice")
    admin.fails("invalid_input: project name 'Bad Name'", "admin", "projects", "create", "Bad Name")


def test_audit_records_the_operator(admin: Admin, session: Session) -> None:
    register_account(session, "alice")
    admin.json("admin", "accounts", "approve", "alice", "--allow", "10.0.0.0/8")
    admin.json("admin", "tokens", "create", "alice")
    events = admin.json("admin", "audit")
    kinds = [event["kind"] for event in events]
    assert kinds == ["token.created", "network.allowed", "account.approve", "account.registered"]
    assert {event["actor"] for event in events[:3]} == {operator_actor()}
    assert (events[2]["subject"], events[2]["detail"]) == ("alice", {"status": "approved"})
    assert [e["kind"] for e in admin.json("admin", "audit", "--user", "alice")] == kinds  # by or about alice
    assert admin.json("admin", "audit", "--user", operator_actor()) == events[:3]
    assert [e["kind"] for e in admin.json("admin", "audit", "--kind", "network.allowed")] == ["network.allowed"]
    assert len(admin.json("admin", "audit", "--limit", "2")) == 2
    code, out, _ = admin("admin", "audit")
    assert code == 0 and "account.approve" in out and operator_actor() in out


@pytest.mark.parametrize(
    "argv",
    [
        ("accounts", "show"),
        ("accounts", "approve"),
        ("accounts", "suspend"),
        ("allow-ip", "ghost", "10.0.0.0/8"),
        ("tokens", "create"),
        ("tokens", "list"),
        ("keys", "list"),
        ("projects", "add-member", "glaciers"),
    ],
)
def test_an_unknown_account_is_not_found(admin: Admin, argv: tuple[str, ...]) -> None:
    if argv[0] == "projects":
        admin.json("admin", "projects", "create", "glaciers")
    command = argv if "ghost" in argv else (*argv, "ghost")
    admin.fails("not_found: no account named 'ghost'", "admin", *command)


def test_an_unmigrated_database_is_refused(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", database_url)
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).touch()  # exists, but empty
    err = Admin(capsys, tmp_path).fails("configuration_error: the database is empty", "admin", "accounts", "list")
    assert "run `nephelae db upgrade --home" in err


def test_a_missing_home_database_is_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "mistyped"
    err = Admin(capsys, home).fails("configuration_error: no database at", "admin", "accounts", "list")
    assert "nephelae db upgrade" in err
    assert not home.exists()
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", "nonsense")
    Admin(capsys, home).fails("configuration_error: database URL 'nonsense'", "admin", "accounts", "list")
