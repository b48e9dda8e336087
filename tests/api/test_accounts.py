"""Registration and `/me` through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from nephelae.config import Settings
from tests.api.support import SECOND_ADDRESS, People, assert_problem, bearer, client_from, registration_form
from tests.support.server import RunningServer, serve_in_thread


def test_registration_is_accepted_as_pending(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/api/v1/accounts", json=registration_form("alice"))
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"username", "email", "full_name", "affiliation", "project", "status", "created_at"}
    assert body["username"] == "alice"
    assert body["status"] == "pending"
    assert body["project"] == "oceanheatflux"
    assert body["created_at"].endswith("Z")


def test_duplicate_username_or_email_is_a_conflict(server: RunningServer) -> None:
    url = f"{server.url}/api/v1/accounts"
    assert httpx.post(url, json=registration_form("alice")).status_code == 202
    detail = assert_problem(httpx.post(url, json=registration_form("alice", email="other@x.org")), 409, "conflict")
    assert "username" in detail
    detail = assert_problem(httpx.post(url, json=registration_form("bob", email="ALICE@ifremer.example")), 409)
    assert "e-mail" in detail


BAD_USERNAMES = ["../etc", "Root", "a", "rm -rf", "x" * 40, "élodie", "root", "al\x00ice", ""]
BAD_FIELDS = [
    {"email": "not-an-email"},
    {"email": "a\x00b@ifremer.example"},  # PostgreSQL refuses NUL: this must be a 400, not a 500
    {"full_name": "   "},
    {"project": "Ocean Heat"},
    {"justification": "a\x00b"},
]
MALFORMED: list[dict[str, object]] = [{"full_name": 42}, {"admin": True}, {"justification": "x" * 10_001}]


def test_bad_registrations_are_problems(settings: Settings) -> None:
    """Unsafe usernames and bad fields are refused by the domain (400) or the schema (422), always as problems."""
    with serve_in_thread(settings.model_copy(update={"auth_failure_limit": 100})) as server:
        url = f"{server.url}/api/v1/accounts"
        for username in BAD_USERNAMES:
            response = httpx.post(url, json=registration_form(username, email="x@example.org"))
            assert response.status_code in (400, 422), username
            assert "username" in assert_problem(response, response.status_code)
        for changes in BAD_FIELDS:
            assert_problem(httpx.post(url, json=registration_form("bob", **changes)), 400, "invalid_input")
        assert_problem(httpx.post(url, json=registration_form("bob") | {"username": 42}), 422, "invalid_request")
        for malformed in MALFORMED:
            assert_problem(httpx.post(url, json=registration_form("bob", **malformed)), 422, "invalid_request")
        assert_problem(httpx.post(url, json={"username": "bob"}), 422, "invalid_request")
        assert_problem(httpx.post(url, content=b"not json", headers={"content-type": "application/json"}), 422)
        assert httpx.post(url, json=registration_form("bob")).status_code == 202  # nothing above was recorded


def test_registration_is_rate_limited_per_address(settings: Settings) -> None:
    """Every attempt counts, accepted or refused; past the limit, 429 with Retry-After; other addresses unaffected."""
    with serve_in_thread(settings.model_copy(update={"auth_failure_limit": 3})) as server:
        url = f"{server.url}/api/v1/accounts"
        assert httpx.post(url, json=registration_form("alice")).status_code == 202
        assert httpx.post(url, json=registration_form("Bad")).status_code == 400
        assert httpx.post(url, json=registration_form("alice")).status_code == 409
        response = httpx.post(url, json=registration_form("carol"))
        assert "too many registrations from 127.0.0.1" in assert_problem(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        with client_from(SECOND_ADDRESS, server.url) as elsewhere:
            assert elsewhere.post("/api/v1/accounts", json=registration_form("carol")).status_code == 202


def test_me_describes_the_caller(server: RunningServer, people: People) -> None:
    token = people.account("alice", allow=["127.0.0.1/32", "2001:db8::/48"])
    admin = people.admin()
    projects = f"{server.url}/api/v1/admin/projects"
    assert httpx.post(projects, json={"name": "oceanheatflux"}, headers=bearer(admin)).status_code == 201
    member = {"username": "alice"}
    assert httpx.post(f"{projects}/oceanheatflux/members", json=member, headers=bearer(admin)).status_code == 201
    response = httpx.get(f"{server.url}/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {
        "username": "alice",
        "email": "alice@ifremer.example",
        "full_name": "Alice Martin",
        "affiliation": "Ifremer / CERSAT",
        "role": "user",
        "status": "approved",
        "projects": ["oceanheatflux"],
        "allowed_networks": ["127.0.0.1/32", "2001:db8::/48"],
        "address": "127.0.0.1",
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nph_not-a-token"},
        {"Authorization": "Bearer something-else"},
    ],
    ids=["none", "basic", "empty", "unknown", "foreign"],
)
def test_without_a_valid_token_is_401(server: RunningServer, headers: dict[str, str]) -> None:
    response = httpx.get(f"{server.url}/api/v1/me", headers=headers)
    detail = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "nephelae admin tokens create" in detail
