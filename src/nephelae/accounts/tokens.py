"""API tokens: random, prefixed, shown once, stored as a hash, expiring and revocable."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from nephelae.accounts import audit
from nephelae.accounts.registry import get_account
from nephelae.db.models import ApiToken
from nephelae.errors import Conflict, InvalidInput, NotFound

TOKEN_PREFIX = "nph_"  # noqa: S105 (a marker, not a secret)
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_EXPIRY_DAYS = 3650


def hash_token(token: str) -> str:
    """SHA-256 of the token: enough for 256-bit random secrets (slow hashes protect guessable passwords)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, username: str, *, name: str = "default", expires_days: int | None = 90, actor: str | None = None
) -> tuple[str, ApiToken]:
    """A new token for `username`; returns the token itself (shown once, never stored) and its record."""
    if not TOKEN_NAME.fullmatch(name):
        raise InvalidInput(f"token name {name!r} is not allowed: letters, digits, '.', '-', '_' (up to 64)")
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(f"expiry must be between 1 and {MAX_EXPIRY_DAYS} days")
    account = get_account(session, username)
    if session.scalar(select(ApiToken).where(ApiToken.account_id == account.id, ApiToken.name == name)):
        raise Conflict(f"{username} already has a token named {name!r}; revoke it or choose another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    record = ApiToken(
        account=account,
        name=name,
        token_hash=hash_token(token),
        display_prefix=token[:10],
        created_at=now,
        expires_at=None if expires_days is None else now + dt.timedelta(days=expires_days),
    )
    session.add(record)
    audit.record(session, "token.created", actor=actor, subject=username, token=name)
    session.commit()
    return token, record


def list_tokens(session: Session, username: str) -> list[ApiToken]:
    account = get_account(session, username)
    return list(session.scalars(select(ApiToken).where(ApiToken.account_id == account.id).order_by(ApiToken.id)))


def revoke_token(session: Session, username: str, name: str, *, actor: str | None = None) -> ApiToken:
    account = get_account(session, username)
    record = session.scalar(select(ApiToken).where(ApiToken.account_id == account.id, ApiToken.name == name))
    if record is None:
        raise NotFound(f"{username} has no token named {name!r}; `nephelae admin tokens list {username}` shows them")
    if record.revoked_at is None:
        record.revoked_at = dt.datetime.now(dt.UTC)
        audit.record(session, "token.revoked", actor=actor, subject=username, token=name)
        session.commit()
    return record


def find_token(session: Session, token: str) -> ApiToken | None:
    """The record of a presented token, if it is one of ours."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
