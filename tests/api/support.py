"""Helpers for the accounts and access tests: people made with the services, clients bound to a source address."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from nephelae.accounts import Registration, networks, registry, tokens
from nephelae.api.problems import PROBLEM_MEDIA_TYPE

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
SECOND_ADDRESS = "127.0.0.2"  # another loopback source: a second machine, as far as the server can tell


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> str:
    """Assert a problem+json answer with `status` (and `code`); returns its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code
    detail: str = body["detail"]
    return detail


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client_from(address: str, base_url: str) -> httpx.Client:
    """A client whose requests leave from `address` (any 127.0.0.0/8 address works on loopback)."""
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=address), timeout=10)


def registration_form(username: str, **changes: Any) -> dict[str, Any]:
    """A complete, valid registration body for `username`, with `changes` applied."""
    form = {
        "username": username,
        "email": f"{username}@ifremer.example",
        "full_name": "Alice Martin",
        "affiliation": "Ifremer / CERSAT",
        "project": "oceanheatflux",
        "justification": "Air-sea heat flux climatologies from L4 SST.",
    }
    return form | changes


@dataclass
class People:
    """Accounts set up directly with the services, as an operator's `nephelae admin` commands would."""

    sessions: sessionmaker[Session]

    def account(
        self,
        username: str,
        *,
        status: str = "approved",
        role: str = "user",
        allow: Sequence[str] = ("127.0.0.1/32",),
        token_name: str = "laptop",
    ) -> str:
        """Register `username`, bring it to `status` with `role` and `allow`ed ranges; returns a fresh token."""
        with self.sessions() as session:
            form = registration_form(username)
            registry.register(session, Registration(**form))
            for decision in _DECISIONS_TO[status]:
                registry.decide(session, username, decision, actor="setup")
            if role != "user":
                registry.set_role(session, username, role, actor="setup")
            for cidr in allow:
                networks.allow_network(session, username, cidr, actor="setup")
            token, _ = tokens.create_token(session, username, name=token_name, expires_days=1, actor="setup")
        return token

    def admin(self, username: str = "operator1") -> str:
        """The first administrator, allowed from 127.0.0.1 only; returns its token."""
        return self.account(username, role="admin")


_DECISIONS_TO: dict[str, tuple[str, ...]] = {
    "pending": (),
    "approved": ("approve",),
    "rejected": ("reject",),
    "suspended": ("approve", "suspend"),
}
