"""The operators' endpoints through a real server: the whole life of an account, then each resource in turn."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from nephelae.accounts.keys import fingerprint
from tests.api.support import SECOND_ADDRESS, People, assert_problem, bearer, client_from, registration_form
from tests.support.server import RunningServer


@pytest.fixture
def admin(server: RunningServer, people: People) -> Iterator[httpx.Client]:
    """A client of the admin API, authenticated as the first administrator (made with the services)."""
    token = people.admin()
    with httpx.Client(base_url=f"{server.url}/api/v1/admin", headers=bearer(token), timeout=10) as client:
        yield client


def test_life_cycle_of_an_account(server: RunningServer, admin: httpx.Client) -> None:
    """Register, approve with a range, get a token, connect; refused elsewhere until allowed; suspended; audited."""
    api = f"{server.url}/api/v1"
    assert httpx.post(f"{api}/accounts", json=registration_form("alice")).status_code == 202
    assert [a["username"] for a in admin.get("/accounts", params={"status": "pending"}).json()] == ["alice"]
    approved = admin.post("/accounts/alice/approve", json={"allow": ["127.0.0.1/32"]})
    assert approved.status_code == 200
    account = approved.json()
    assert (account["status"], account["decided_by"]) == ("approved", "operator1")
    assert account["allowed_networks"] == ["127.0.0.1/32"]
    assert account["decided_at"].endswith("Z")
    created = admin.post("/accounts/alice/tokens", json={"name": "laptop"})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    token = created.json()["token"]
    assert httpx.get(f"{api}/me", headers=bearer(token)).json()["status"] == "approved"
    with client_from(SECOND_ADDRESS, server.url) as elsewhere:
        detail = assert_problem(elsewhere.get("/api/v1/me", headers=bearer(token)), 403)
        assert "127.0.0.2" in detail and "nephelae admin allow-ip" in detail
        assert admin.post("/accounts/alice/networks", json={"cidr": "127.0.0.2/32"}).status_code == 201
        assert elsewhere.get("/api/v1/me", headers=bearer(token)).status_code == 200
    assert admin.post("/accounts/alice/suspend").json()["status"] == "suspended"
    assert "suspended" in assert_problem(httpx.get(f"{api}/me", headers=bearer(token)), 403)
    _assert_audited(admin)


def _assert_audited(admin: httpx.Client) -> None:
    events = admin.get("/audit", params={"limit": 1000}).json()
    assert [event["id"] for event in events] == sorted((event["id"] for event in events), reverse=True)
    seen = {(event["kind"], event["actor"], event["address"]) for event in events}
    assert ("account.registered", "alice", "127.0.0.1") in seen
    assert ("account.approve", "operator1", None) in seen
    about_alice = admin.get("/audit", params={"involving": "alice", "kind": "account.approve"}).json()
    assert [(event["actor"], event["subject"]) for event in about_alice] == [("operator1", "alice")]
    assert ("access.refused", "alice", "127.0.0.2") in seen
    assert ("token.new_address", "alice", "127.0.0.1") in seen
    assert ("token.new_address", "alice", "127.0.0.2") in seen
    assert ("account.suspend", "operator1", None) in seen
    refusals = admin.get("/audit", params={"actor": "alice", "kind": "access.refused"}).json()
    assert [event["detail"]["reason"] for event in refusals] == ["account suspended", "address not allowed"]
    assert len(admin.get("/audit", params={"limit": 2}).json()) == 2


ADMIN_ENDPOINTS = [
    ("GET", "/accounts"),
    ("GET", "/accounts/alice"),
    ("POST", "/accounts/alice/suspend"),
    ("POST", "/accounts/alice/tokens"),
    ("DELETE", "/accounts/alice/networks/127.0.0.1/32"),
    ("GET", "/projects"),
    ("GET", "/audit"),
]


def test_admin_endpoints_refuse_everyone_else(server: RunningServer, people: People) -> None:
    token = people.account("alice")
    for method, path in ADMIN_ENDPOINTS:
        url = f"{server.url}/api/v1/admin{path}"
        detail = assert_problem(httpx.request(method, url, headers=bearer(token)), 403, "forbidden")
        assert "alice is not an administrator" in detail
        assert_problem(httpx.request(method, url), 401, "unauthenticated")
    assert httpx.get(f"{server.url}/api/v1/me", headers=bearer(token)).json()["status"] == "approved"


def test_decisions_follow_the_account_status(server: RunningServer, admin: httpx.Client) -> None:
    for username in ("alice", "bob"):
        assert httpx.post(f"{server.url}/api/v1/accounts", json=registration_form(username)).status_code == 202
    assert_problem(admin.post("/accounts/alice/approve", json={"allow": ["not-a-range"]}), 400, "invalid_input")
    assert admin.get("/accounts/alice").json()["status"] == "pending"  # nothing done when a range is bad
    assert admin.post("/accounts/alice/approve").json()["allowed_networks"] == []
    assert_problem(admin.post("/accounts/alice/approve"), 409, "conflict")
    assert_problem(admin.post("/accounts/alice/reject"), 409, "conflict")
    assert_problem(admin.post("/accounts/alice/reinstate"), 409, "conflict")
    assert admin.post("/accounts/bob/reject").json()["status"] == "rejected"
    assert admin.post("/accounts/bob/approve", json={"allow": ["2001:db8::1/48"]}).json()["allowed_networks"] == [
        "2001:db8::/48"
    ]
    assert [a["username"] for a in admin.get("/accounts", params={"status": "approved"}).json()] == [
        "operator1",
        "alice",
        "bob",
    ]
    assert admin.put("/accounts/bob/role", json={"role": "admin"}).json()["role"] == "admin"
    assert_problem(admin.put("/accounts/bob/role", json={"role": "root"}), 422, "invalid_request")
    assert_problem(admin.get("/accounts", params={"status": "happy"}), 422, "invalid_request")
    assert_problem(admin.get("/accounts/nobody"), 404, "not_found")
    assert_problem(admin.get("/accounts/Bad%00Name"), 422, "invalid_request")


def test_allowed_networks(admin: httpx.Client, people: People) -> None:
    people.account("alice", allow=())
    assert admin.post("/accounts/alice/networks", json={"cidr": "192.0.2.7/24"}).status_code == 201
    added = admin.post("/accounts/alice/networks", json={"cidr": "2001:db8::/48"})
    assert added.json() == {"username": "alice", "allowed_networks": ["192.0.2.0/24", "2001:db8::/48"]}
    assert_problem(admin.post("/accounts/alice/networks", json={"cidr": "192.0.2.0/24"}), 409, "conflict")
    assert_problem(admin.post("/accounts/alice/networks", json={"cidr": "10.0.0.0/33"}), 400, "invalid_input")
    assert admin.delete("/accounts/alice/networks/2001:db8::/48").status_code == 204
    assert admin.delete("/accounts/alice/networks/192.0.2.0%2F24").status_code == 204
    assert admin.get("/accounts/alice/networks").json()["allowed_networks"] == []
    assert_problem(admin.delete("/accounts/alice/networks/192.0.2.0/24"), 404, "not_found")


def test_tokens_are_shown_once_and_listed_without_secrets(
    server: RunningServer, admin: httpx.Client, people: People
) -> None:
    people.account("alice")
    created = admin.post("/accounts/alice/tokens", json={"name": "ci", "expires_days": 7}).json()
    default = admin.post("/accounts/alice/tokens").json()
    assert default["name"] == "default"
    assert default["expires_at"] > created["expires_at"]  # the platform's default lifetime, 90 days
    assert_problem(admin.post("/accounts/alice/tokens", json={"name": "ci"}), 409, "conflict")
    assert_problem(admin.post("/accounts/alice/tokens", json={"name": "no spaces"}), 400, "invalid_input")
    assert_problem(admin.post("/accounts/alice/tokens", json={"expires_days": 0}), 422, "invalid_request")
    httpx.get(f"{server.url}/api/v1/me", headers=bearer(created["token"]))
    listing = admin.get("/accounts/alice/tokens")
    assert [token["name"] for token in listing.json()] == ["laptop", "ci", "default"]
    ci = listing.json()[1]
    assert set(ci) == {
        "name",
        "prefix",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "last_used_address",
    }
    assert ci["last_used_address"] == "127.0.0.1"
    assert created["token"].startswith(ci["prefix"])
    for token in (created["token"], default["token"]):
        assert token.removeprefix("nph_") not in listing.text
    assert admin.delete("/accounts/alice/tokens/ci").json()["revoked_at"] is not None
    assert_problem(admin.delete("/accounts/alice/tokens/nothing"), 404, "not_found")


def _public_key(comment: str = "alice@laptop") -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return f"{raw.decode()} {comment}"


def test_ssh_keys(admin: httpx.Client, people: People) -> None:
    people.account("alice")
    # A fingerprint with a slash in it, to check that it survives as a path segment.
    line = next(key for key in (_public_key() for _ in range(200)) if "/" in fingerprint(key.split()[1]))
    added = admin.post("/accounts/alice/keys", json={"public_key": line})
    assert added.status_code == 201
    key = added.json()
    assert key["key_type"] == "ssh-ed25519" and key["comment"] == "alice@laptop"
    assert key["fingerprint"] == fingerprint(line.split()[1])
    assert_problem(admin.post("/accounts/alice/keys", json={"public_key": line}), 409, "conflict")
    for bad in ("ssh-ed25519 AAAA", "not a key", _public_key("x\nssh-ed25519 AAAA injected"), _public_key("a\x00")):
        assert_problem(admin.post("/accounts/alice/keys", json={"public_key": bad}), 400, "invalid_input")
    assert [k["fingerprint"] for k in admin.get("/accounts/alice/keys").json()] == [key["fingerprint"]]
    assert admin.delete(f"/accounts/alice/keys/{key['fingerprint']}").status_code == 204
    assert_problem(admin.delete(f"/accounts/alice/keys/{key['fingerprint']}"), 404, "not_found")
    assert_problem(admin.delete("/accounts/alice/keys/MD5:00"), 422, "invalid_request")


def test_projects(server: RunningServer, admin: httpx.Client, people: People) -> None:
    token = people.account("alice")
    assert admin.post("/projects", json={"name": "oceanheatflux"}).status_code == 201
    assert_problem(admin.post("/projects", json={"name": "oceanheatflux"}), 409, "conflict")
    assert_problem(admin.post("/projects", json={"name": "Ocean Heat"}), 400, "invalid_input")
    assert admin.post("/projects/oceanheatflux/members", json={"username": "alice"}).status_code == 201
    assert_problem(admin.post("/projects/oceanheatflux/members", json={"username": "alice"}), 409, "conflict")
    assert_problem(admin.post("/projects/oceanheatflux/members", json={"username": "nobody"}), 404, "not_found")
    added = admin.post("/projects/oceanheatflux/datasets", json={"dataset": "odyssea-l4-sst"})
    assert added.status_code == 201
    assert added.json() | {"created_at": None} == {
        "name": "oceanheatflux",
        "created_at": None,
        "members": ["alice"],
        "datasets": ["odyssea-l4-sst"],
    }
    assert_problem(admin.post("/projects/oceanheatflux/datasets", json={"dataset": "../etc"}), 400, "invalid_input")
    assert [p["name"] for p in admin.get("/projects").json()] == ["oceanheatflux"]
    assert admin.get("/accounts/alice").json()["projects"] == ["oceanheatflux"]
    assert httpx.get(f"{server.url}/api/v1/me", headers=bearer(token)).json()["projects"] == ["oceanheatflux"]
    assert admin.delete("/projects/oceanheatflux/members/alice").status_code == 204
    assert admin.get("/projects/oceanheatflux").json()["members"] == []
    assert_problem(admin.get("/projects/nothing"), 404, "not_found")
    kinds = [event["kind"] for event in admin.get("/audit", params={"actor": "operator1", "limit": 4}).json()]
    assert kinds == ["project.member_removed", "project.dataset_added", "project.member_added", "project.created"]
