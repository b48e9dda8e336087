"""Credentials of SSH sessions: short-lived tokens minted for them, and when an account's SSH access expires.

Tokens minted here are named `ssh-...`; they are not the account's own credentials: they never extend its access,
are deleted when the gateway command ends, and expired ones are pruned whenever a new one is minted.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nephelae.accounts.tokens import TOKEN_PREFIX, hash_token
from nephelae.db.models import Account, ApiToken

SESSION_TOKEN_PREFIX = "ssh-"  # noqa: S105  # a name prefix, not a secret
# At most this many live login tokens per account: probing sshd with a known public key cannot pile them up.
MAX_LIVE_SESSION_TOKENS = 50


def mint_session_token(session: Session, account: Account, minutes: int, *, login: bool = False) -> str:
    """A new token for `account` valid `minutes`; a `login` one works only on the entry point (see accounts.access)."""
    now = dt.datetime.now(dt.UTC)
    _prune(session, account, now)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            account=account,
            name=SESSION_TOKEN_PREFIX + secrets.token_hex(6),
            token_hash=hash_token(token),
            display_prefix=token[:10],
            created_at=now,
            expires_at=now + dt.timedelta(minutes=minutes),
            ssh_session=login,
        )
    )
    session.commit()
    return token


def drop_session_token(session: Session, token: str) -> None:
    """Forget a minted token once its command has ended."""
    session.execute(delete(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    session.commit()


def _prune(session: Session, account: Account, now: dt.datetime) -> None:
    minted = list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.account_id == account.id, ApiToken.name.startswith(SESSION_TOKEN_PREFIX))
            .order_by(ApiToken.id.desc())
        )
    )
    logins = 0
    for record in minted:
        logins += record.ssh_session
        expired = record.expires_at is not None and record.expires_at <= now
        # Only login tokens pile up (one per key lookup); a gateway command's token lives as long as the command.
        if expired or (record.ssh_session and logins >= MAX_LIVE_SESSION_TOKENS):
            session.delete(record)


def access_expiry(session: Session, account: Account) -> tuple[bool, dt.datetime | None]:
    """(expired, until): SSH access lasts as long as the account's own credentials do.

    A token's credential ends at its expiry or at its revocation, whichever comes first, so that revoking tokens
    never lengthens access (revoking expired ones must not reopen it). No own token at all, or a live one without
    expiry: (False, None), keys alone decide. Every one ended: (True, None). Otherwise (False, the latest end), which
    the key line carries as `expiry-time`.
    """
    own = [
        record
        for record in session.scalars(select(ApiToken).where(ApiToken.account_id == account.id))
        if not record.name.startswith(SESSION_TOKEN_PREFIX)
    ]
    ends = [_end(record) for record in own]
    if not own or any(end is None for end in ends):
        return False, None
    latest = max(end for end in ends if end is not None)
    return (False, latest) if latest > dt.datetime.now(dt.UTC) else (True, None)


def _end(record: ApiToken) -> dt.datetime | None:
    moments = [moment for moment in (record.expires_at, record.revoked_at) if moment is not None]
    return min(moments) if moments else None
