"""Tokens minted for SSH sessions: bounded in number, never extending the account's own access."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from nephelae.accounts import registry, tokens
from nephelae.db import session_factory
from nephelae.db.models import ApiToken
from nephelae.ssh.credentials import MAX_LIVE_SESSION_TOKENS, access_expiry, mint_session_token
from tests.api.support import People


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_login_tokens_are_bounded_and_gateway_tokens_kept(engine: Engine) -> None:
    People(session_factory(engine)).account("alice")
    with session_factory(engine)() as session:
        alice = registry.get_account(session, "alice")
        gateway = [mint_session_token(session, alice, 5) for _ in range(3)]
        for _ in range(MAX_LIVE_SESSION_TOKENS + 5):  # e.g. someone offering alice's public key again and again
            mint_session_token(session, alice, 5, login=True)
        minted = session.scalars(select(ApiToken).where(ApiToken.name.startswith("ssh-"))).all()
        assert sum(record.ssh_session for record in minted) == MAX_LIVE_SESSION_TOKENS
        assert sum(not record.ssh_session for record in minted) == len(gateway)  # running commands keep theirs
        assert access_expiry(session, alice)[1] is not None  # still the own token's expiry: minted ones don't count
        own = session.scalars(select(ApiToken).where(ApiToken.name == "laptop")).one()
        tokens.revoke_token(session, "alice", "laptop", actor="op")
        assert access_expiry(session, alice) == (True, None)  # her only credential was revoked: access ends
        assert own.revoked_at is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_revoking_tokens_never_lengthens_access(engine: Engine) -> None:
    People(session_factory(engine)).account("alice")
    with session_factory(engine)() as session:
        alice = registry.get_account(session, "alice")
        own = session.scalars(select(ApiToken).where(ApiToken.name == "laptop")).one()
        own.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        session.commit()
        assert access_expiry(session, alice) == (True, None)  # expired
        tokens.revoke_token(session, "alice", "laptop", actor="op")
        assert access_expiry(session, alice) == (True, None)  # still: revoking an expired token reopens nothing
        session.delete(own)
        session.commit()
        assert access_expiry(session, alice) == (False, None)  # an account without any token: keys alone decide
