"""Who may connect, from where, with what: addresses, proxies, token states, account states, brute force.

Requests really come from different source addresses: 127.0.0.1, 127.0.0.2 (a second loopback address) and ::1.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, MetaData, select, update

from nephelae.accounts.tokens import hash_token
from nephelae.api import create_app
from nephelae.api.auth import forwarded_client
from nephelae.config import Settings
from nephelae.db.models import ApiToken
from nephelae.errors import ConfigurationError, InvalidInput
from tests.api.support import SECOND_ADDRESS, People, assert_problem, bearer, client_from
from tests.support.server import RunningServer, serve_in_thread


def test_other_addresses_are_refused_until_allowed(server: RunningServer, people: People) -> None:
    token, admin = people.account("alice"), people.admin()
    with client_from(SECOND_ADDRESS, server.url) as elsewhere:
        detail = assert_problem(elsewhere.get("/api/v1/me", headers=bearer(token)), 403, "forbidden")
        assert "IP 127.0.0.2 is not in the allowed ranges of account alice" in detail
        assert "nephelae admin allow-ip alice 127.0.0.0/24" in detail
        forged = bearer(token) | {"X-Forwarded-For": "127.0.0.1"}
        assert "IP 127.0.0.2 " in assert_problem(elsewhere.get("/api/v1/me", headers=forged), 403)
        allow = httpx.post(
            f"{server.url}/api/v1/admin/accounts/alice/networks", json={"cidr": "127.0.0.2"}, headers=bearer(admin)
        )
        assert allow.status_code == 201
        assert allow.json()["allowed_networks"] == ["127.0.0.1/32", "127.0.0.2/32"]
        me = elsewhere.get("/api/v1/me", headers=bearer(token))
        assert me.status_code == 200
        assert me.json()["address"] == SECOND_ADDRESS


def test_forwarded_for_from_an_untrusted_peer_is_ignored(server: RunningServer, people: People) -> None:
    """A caller on 127.0.0.1 claiming to forward for an allowed address gets nothing from the claim."""
    token = people.account("carol", allow=["127.0.0.2/32"])
    forged = bearer(token) | {"X-Forwarded-For": "127.0.0.2", "X-Real-IP": "127.0.0.2", "Forwarded": "for=127.0.0.2"}
    detail = assert_problem(httpx.get(f"{server.url}/api/v1/me", headers=forged), 403, "forbidden")
    assert "IP 127.0.0.1 is not in the allowed ranges of account carol" in detail


def test_forwarded_for_is_believed_only_from_trusted_proxies(settings: Settings, people: People) -> None:
    """127.0.0.2 plays a reverse proxy: its X-Forwarded-For is believed, right-most untrusted hop first."""
    token = people.account("alice")
    with (
        serve_in_thread(settings.model_copy(update={"trusted_proxies": ["127.0.0.2/32"]})) as server,
        client_from(SECOND_ADDRESS, server.url) as proxy,
    ):
        me = proxy.get("/api/v1/me", headers=bearer(token) | {"X-Forwarded-For": "127.0.0.1"})
        assert me.status_code == 200
        assert me.json()["address"] == "127.0.0.1"
        spoofed = bearer(token) | {"X-Forwarded-For": "127.0.0.1, 198.51.100.7"}  # the client wrote the left part
        assert "IP 198.51.100.7 " in assert_problem(proxy.get("/api/v1/me", headers=spoofed), 403)
        chained = bearer(token) | {"X-Forwarded-For": "198.51.100.7, 127.0.0.1, 127.0.0.2"}
        assert proxy.get("/api/v1/me", headers=chained).json()["address"] == "127.0.0.1"
        assert "IP 127.0.0.2 " in assert_problem(proxy.get("/api/v1/me", headers=bearer(token)), 403)
        garbage = bearer(token) | {"X-Forwarded-For": "127.0.0.1, evil"}
        assert "X-Forwarded-For" in assert_problem(proxy.get("/api/v1/me", headers=garbage), 400, "invalid_input")


@pytest.mark.parametrize(
    ("hops", "client"),
    [
        ([], "10.0.0.1"),
        (["192.0.2.9"], "192.0.2.9"),
        (["192.0.2.9, 10.0.0.2"], "192.0.2.9"),
        (["203.0.113.5, 192.0.2.9", "10.0.0.2"], "192.0.2.9"),
        (["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
        (["::ffff:192.0.2.9"], "192.0.2.9"),
    ],
)
def test_forwarded_client_is_the_right_most_untrusted_hop(hops: list[str], client: str) -> None:
    assert forwarded_client("10.0.0.1", hops, ["10.0.0.0/24"]) == client


def test_forwarded_client_refuses_garbage() -> None:
    with pytest.raises(InvalidInput, match="not an IP address"):
        forwarded_client("10.0.0.1", ["192.0.2.9, unknown"], ["10.0.0.0/24"])


def test_a_bad_trusted_proxy_is_a_configuration_error(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, trusted_proxies=["10.0.0.0/8", "the-load-balancer"])
    with pytest.raises(ConfigurationError, match="trusted_proxies: 'the-load-balancer' is not an IP address"):
        create_app(settings)


def test_ipv6_callers_are_checked_against_ipv6_ranges(settings: Settings, people: People) -> None:
    ipv6_token, ipv4_token = people.account("alice", allow=["::1/128"]), people.account("bob")
    with serve_in_thread(settings, host="::1") as server:
        assert server.url.startswith("http://[::1]:")
        url = f"{server.url}/api/v1/me"
        me = httpx.get(url, headers=bearer(ipv6_token))
        assert me.status_code == 200
        assert me.json()["address"] == "::1"
        detail = assert_problem(httpx.get(url, headers=bearer(ipv4_token)), 403)
        assert "IP ::1 is not in the allowed ranges of account bob" in detail
        assert "allow-ip bob ::/64" in detail


def test_an_account_without_allowed_ranges_cannot_connect(server: RunningServer, people: People) -> None:
    token = people.account("alice", allow=())
    detail = assert_problem(httpx.get(f"{server.url}/api/v1/me", headers=bearer(token)), 403, "forbidden")
    assert "IP 127.0.0.1 is not in the allowed ranges of account alice" in detail


def test_expired_and_revoked_tokens_are_401(server: RunningServer, people: People, engine: Engine) -> None:
    token, admin = people.account("alice"), people.admin()
    me = f"{server.url}/api/v1/me"
    assert httpx.get(me, headers=bearer(token)).status_code == 200
    with engine.begin() as connection:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        connection.execute(update(ApiToken).where(ApiToken.token_hash == hash_token(token)).values(expires_at=past))
    assert "expired" in assert_problem(httpx.get(me, headers=bearer(token)), 401, "unauthenticated")
    created = httpx.post(
        f"{server.url}/api/v1/admin/accounts/alice/tokens", json={"name": "second"}, headers=bearer(admin)
    )
    second = created.json()["token"]
    assert httpx.get(me, headers=bearer(second)).status_code == 200
    revoked = httpx.delete(f"{server.url}/api/v1/admin/accounts/alice/tokens/second", headers=bearer(admin))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    response = httpx.get(me, headers=bearer(second))
    assert "revoked" in assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_only_approved_accounts_may_connect(server: RunningServer, people: People) -> None:
    me, admin = f"{server.url}/api/v1/me", people.admin()
    pending, rejected = people.account("pat", status="pending"), people.account("rex", status="rejected")
    suspended = people.account("sue", status="suspended")
    assert "pending approval" in assert_problem(httpx.get(me, headers=bearer(pending)), 403, "forbidden")
    assert "rejected" in assert_problem(httpx.get(me, headers=bearer(rejected)), 403, "forbidden")
    assert "suspended" in assert_problem(httpx.get(me, headers=bearer(suspended)), 403, "forbidden")
    reinstate = httpx.post(f"{server.url}/api/v1/admin/accounts/sue/reinstate", headers=bearer(admin))
    assert reinstate.json()["status"] == "approved"
    assert httpx.get(me, headers=bearer(suspended)).status_code == 200


def test_brute_force_is_throttled_per_address(settings: Settings, people: People) -> None:
    """Past the limit of 401s, an address gets 429 even with a good token; 403s and successes never count."""
    token = people.account("alice", allow=["127.0.0.1/32"])
    with (
        serve_in_thread(settings.model_copy(update={"auth_failure_limit": 3})) as server,
        client_from(SECOND_ADDRESS, server.url) as attacker,
    ):
        for _ in range(5):
            assert attacker.get("/api/v1/me", headers=bearer(token)).status_code == 403  # refused, not guessed
        for attempt in range(3):
            assert_problem(attacker.get("/api/v1/me", headers=bearer(f"nph_guess{attempt}")), 401)
        response = attacker.get("/api/v1/me", headers=bearer(token))
        assert "too many failed attempts from 127.0.0.2" in assert_problem(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 60
        for _ in range(5):
            assert httpx.get(f"{server.url}/api/v1/me", headers=bearer(token)).status_code == 200
        for _ in range(2):
            assert_problem(httpx.get(f"{server.url}/api/v1/me", headers=bearer("nph_guess")), 401)
        assert httpx.get(f"{server.url}/api/v1/me", headers=bearer(token)).status_code == 200


def test_the_database_holds_no_token_in_clear(server: RunningServer, people: People, engine: Engine) -> None:
    """Every text of every row of every table, read back raw: neither a token nor its secret part is there."""
    issued = [people.account("alice"), people.admin()]
    created = httpx.post(
        f"{server.url}/api/v1/admin/accounts/alice/tokens", json={"name": "api"}, headers=bearer(issued[1])
    )
    issued.append(created.json()["token"])
    for token in issued:
        assert httpx.get(f"{server.url}/api/v1/me", headers=bearer(token)).status_code == 200
    dump = _dump_database(engine)
    assert "alice" in dump and "127.0.0.1" in dump  # the dump does see the data
    for token in issued:
        secret = token.removeprefix("nph_")
        assert len(secret) >= 40
        assert token not in dump
        assert secret not in dump


def _dump_database(engine: Engine) -> str:
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        return "\n".join(
            repr(tuple(row)) for table in tables.sorted_tables for row in connection.execute(select(table))
        )
