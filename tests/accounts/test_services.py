"""The accounts services on both database backends: validation, decisions, networks, tokens, keys, projects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from nephelae.accounts import Registration, authenticate_token, networks, projects, registry, tokens
from nephelae.accounts import keys as ssh_keys
from nephelae.accounts.audit import list_events
from nephelae.accounts.throttle import FailureThrottle
from nephelae.db import session_factory
from nephelae.errors import AuthenticationRequired, Conflict, InvalidInput, NotFound, PermissionDenied, RateLimited


def registration(username: str = "alice", email: str | None = None) -> Registration:
    return Registration(
        username=username,
        email=email or f"{username}@ifremer.example",
        full_name="Alice Martin",
        affiliation="Ifremer",
        project="oceanheatflux",
        justification="Air-sea heat flux climatologies from L4 SST.",
    )


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


def approved(session: Session, username: str = "alice", cidr: str = "127.0.0.1/32") -> str:
    registry.register(session, registration(username))
    registry.decide(session, username, "approve", actor="op")
    networks.allow_network(session, username, cidr, actor="op")
    token, _ = tokens.create_token(session, username, name="laptop")
    return token


@pytest.mark.parametrize(
    "username", ["a", "Alice", "../etc", "al ice", "rm -rf", "x" * 33, "élodie", "1alice", "root", "postgres", ""]
)
def test_unsafe_or_reserved_usernames_are_refused(session: Session, username: str) -> None:
    with pytest.raises(InvalidInput):
        registry.register(session, registration(username, email="x@example.org"))


@pytest.mark.parametrize("field", ["email", "full_name", "project", "justification"])
def test_bad_registration_fields_are_refused(session: Session, field: str) -> None:
    bad = {"email": "not-an-email", "full_name": "  ", "project": "Ocean Heat", "justification": "a\x00b"}
    request = registration().__dict__ | {field: bad[field]}
    with pytest.raises(InvalidInput, match=field if field != "email" else "e-mail"):
        registry.register(session, Registration(**request))


def test_registration_is_pending_and_unique(session: Session) -> None:
    account = registry.register(session, registration(), address="192.0.2.7")
    assert (account.status, account.role, account.email) == ("pending", "user", "alice@ifremer.example")
    with pytest.raises(Conflict, match="username"):
        registry.register(session, registration("alice", email="other@example.org"))
    with pytest.raises(Conflict, match="e-mail"):
        registry.register(session, registration("bob", email="ALICE@ifremer.example"))
    [event] = list_events(session, kind="account.registered")
    assert (event.actor, event.address) == ("alice", "192.0.2.7")


def test_decisions_follow_the_life_cycle(session: Session) -> None:
    registry.register(session, registration())
    with pytest.raises(Conflict, match="cannot reinstate alice: the account is pending"):
        registry.decide(session, "alice", "reinstate")
    assert registry.decide(session, "alice", "reject", actor="op").status == "rejected"
    assert registry.decide(session, "alice", "approve", actor="op").status == "approved"
    assert registry.decide(session, "alice", "suspend", actor="op").status == "suspended"
    account = registry.decide(session, "alice", "reinstate", actor="op")
    assert (account.status, account.decided_by) == ("approved", "op")
    assert [e.kind for e in list_events(session, actor="op")][:2] == ["account.reinstate", "account.suspend"]
    with pytest.raises(NotFound):
        registry.decide(session, "nobody-here", "approve")


@pytest.mark.parametrize(
    ("address", "cidrs", "allowed"),
    [
        ("127.0.0.1", ["127.0.0.1/32"], True),
        ("127.0.0.2", ["127.0.0.1/32"], False),
        ("10.2.3.4", ["10.2.3.0/24"], True),
        ("::ffff:10.2.3.4", ["10.2.3.0/24"], True),
        ("::1", ["127.0.0.1/32"], False),
        ("::1", ["::1/128"], True),
        ("2001:db8::5", ["2001:db8::/48"], True),
        ("203.0.113.9", ["0.0.0.0/0"], True),
        ("203.0.113.9", [], False),
        ("garbage", ["0.0.0.0/0"], False),
    ],
)
def test_address_in(address: str, cidrs: list[str], allowed: bool) -> None:
    assert networks.address_in(address, cidrs) is allowed


def test_networks_are_normalised_and_unique(session: Session) -> None:
    registry.register(session, registration())
    assert networks.allow_network(session, "alice", "10.2.3.4/24").cidr == "10.2.3.0/24"
    with pytest.raises(Conflict):
        networks.allow_network(session, "alice", "10.2.3.0/24")
    with pytest.raises(InvalidInput, match="not an IP address"):
        networks.allow_network(session, "alice", "10.2.3.0/33")
    networks.remove_network(session, "alice", "10.2.3.0/24")
    with pytest.raises(NotFound, match="allowed: none"):
        networks.remove_network(session, "alice", "10.2.3.0/24")


def test_token_authenticates_from_an_allowed_address_only(session: Session) -> None:
    token = approved(session)
    assert token.startswith("nph_") and len(token) > 40
    principal = authenticate_token(session, token, "127.0.0.1")
    assert (principal.username, principal.role, principal.is_admin) == ("alice", "user", False)
    with pytest.raises(PermissionDenied, match=r"IP 127\.0\.0\.2 .*allow-ip alice 127\.0\.0\.0/24"):
        authenticate_token(session, token, "127.0.0.2")
    kinds = [event.kind for event in list_events(session, actor="alice")]
    assert "access.refused" in kinds and "token.new_address" in kinds


def test_token_is_stored_hashed_only(session: Session) -> None:
    token = approved(session)
    [record] = tokens.list_tokens(session, "alice")
    assert record.token_hash == tokens.hash_token(token) != token
    assert token[10:] not in record.display_prefix


def test_expired_revoked_and_unknown_tokens_are_refused(session: Session) -> None:
    token = approved(session)
    with pytest.raises(AuthenticationRequired, match="unknown token"):
        authenticate_token(session, token + "x", "127.0.0.1")
    [record] = tokens.list_tokens(session, "alice")
    record.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    session.commit()
    with pytest.raises(AuthenticationRequired, match="expired"):
        authenticate_token(session, token, "127.0.0.1")
    tokens.revoke_token(session, "alice", "laptop")
    with pytest.raises(AuthenticationRequired, match="revoked"):
        authenticate_token(session, token, "127.0.0.1")


@pytest.mark.parametrize(("decision", "message"), [("suspend", "suspended"), ("none", "pending approval")])
def test_unapproved_accounts_are_refused(session: Session, decision: str, message: str) -> None:
    if decision == "none":
        registry.register(session, registration())
        token, _ = tokens.create_token(session, "alice")
        networks.allow_network(session, "alice", "0.0.0.0/0")
    else:
        token = approved(session)
        registry.decide(session, "alice", decision)
    with pytest.raises(PermissionDenied, match=message):
        authenticate_token(session, token, "127.0.0.1")


def test_token_names_and_expiry_are_checked(session: Session) -> None:
    registry.register(session, registration())
    tokens.create_token(session, "alice", name="ci")
    with pytest.raises(Conflict):
        tokens.create_token(session, "alice", name="ci")
    with pytest.raises(InvalidInput):
        tokens.create_token(session, "alice", name="../x")
    with pytest.raises(InvalidInput):
        tokens.create_token(session, "alice", name="long", expires_days=0)
    _, forever = tokens.create_token(session, "alice", name="forever", expires_days=None)
    assert forever.expires_at is None


def _ed25519_line(comment: str = "alice@laptop") -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + f" {comment}"


def test_ssh_keys_are_validated_and_unique(session: Session) -> None:
    registry.register(session, registration())
    registry.register(session, registration("bob"))
    line = _ed25519_line()
    key = ssh_keys.add_key(session, "alice", line)
    assert key.fingerprint.startswith("SHA256:") and key.comment == "alice@laptop"
    assert ssh_keys.find_key(session, "ssh-ed25519", line.split()[1]) is not None
    assert ssh_keys.find_key(session, "ssh-rsa", line.split()[1]) is None
    with pytest.raises(Conflict, match="already registered"):
        ssh_keys.add_key(session, "bob", line)
    ssh_keys.remove_key(session, "alice", key.fingerprint)
    assert ssh_keys.list_keys(session, "alice") == []


@pytest.mark.parametrize(
    "line",
    [
        "",
        "ssh-ed25519",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-ed25519 !!!notbase64",
        "ssh-rsa " + _ed25519_line().split()[1],  # an ed25519 blob labelled rsa
        "-----BEGIN OPENSSH PRIVATE KEY-----",
    ],
)
def test_bad_ssh_keys_are_refused(line: str) -> None:
    with pytest.raises(InvalidInput):
        ssh_keys.parse_public_key(line)


def test_short_rsa_keys_are_refused() -> None:
    public = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    line = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    with pytest.raises(InvalidInput, match="at least 2048 bits"):
        ssh_keys.parse_public_key(line)


def test_projects_give_access_to_datasets(session: Session) -> None:
    token = approved(session)
    projects.create_project(session, "oceanheatflux", actor="op")
    projects.add_member(session, "oceanheatflux", "alice")
    projects.add_dataset(session, "oceanheatflux", "demo-l4-sst")
    with pytest.raises(Conflict):
        projects.add_member(session, "oceanheatflux", "alice")
    with pytest.raises(InvalidInput):
        projects.add_dataset(session, "oceanheatflux", "../../etc")
    principal = authenticate_token(session, token, "127.0.0.1")
    assert principal.projects == ("oceanheatflux",)
    assert projects.datasets_of(session, list(principal.projects)) == {"demo-l4-sst"}
    projects.remove_member(session, "oceanheatflux", "alice")
    assert authenticate_token(session, token, "127.0.0.1").projects == ()


def test_throttle_slows_one_address_only() -> None:
    now = [0.0]
    throttle = FailureThrottle(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        throttle.check("192.0.2.1")
        throttle.failed("192.0.2.1")
    with pytest.raises(RateLimited, match="wait 60 s"):
        throttle.check("192.0.2.1")
    throttle.check("192.0.2.2")  # others are unaffected
    now[0] = 60.5
    throttle.check("192.0.2.1")  # the window has passed


def test_throttle_memory_is_bounded() -> None:
    throttle = FailureThrottle(limit=1, window=60, max_addresses=100)
    for index in range(1000):
        throttle.failed(f"10.0.{index // 256}.{index % 256}")
    assert len(throttle._failures) == 100
