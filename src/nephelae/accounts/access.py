"""Who is calling, and may they? One check for every door (HTTP now, SSH later): status, then network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from nephelae.accounts import audit
from nephelae.accounts.networks import address_in, suggested_range
from nephelae.accounts.projects import projects_of
from nephelae.accounts.tokens import find_token
from nephelae.db.models import Account, ApiToken
from nephelae.errors import AuthenticationRequired, PermissionDenied

# Record the token's last use at most this often per address, to keep reads from becoming writes.
_LAST_USED_GRANULARITY = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """An authenticated, authorised caller."""

    account_id: int
    username: str
    role: str
    projects: tuple[str, ...]
    address: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def authenticate_token(session: Session, token: str, address: str, *, entry_addresses: Sequence[str] = ()) -> Principal:
    """The principal behind a bearer token presented from `address`, or a clear refusal (audited).

    A token minted for an SSH session (`ssh_session`) works only from `entry_addresses`, the SSH entry point where
    that session runs; sshd checked the client's address against the account's ranges when the session opened.
    """
    record = find_token(session, token)
    now = dt.datetime.now(dt.UTC)
    if record is None:
        _refuse(session, None, address, "unknown token")
        raise AuthenticationRequired("unknown token; ask an operator for one (`nephelae admin tokens create`)")
    owner = record.account.username
    if record.revoked_at is not None:
        _refuse(session, owner, address, f"revoked token {record.name}")
        raise AuthenticationRequired(f"token {record.name!r} of {owner} was revoked; ask an operator for a new one")
    if record.expires_at is not None and record.expires_at <= now:
        _refuse(session, owner, address, f"expired token {record.name}")
        raise AuthenticationRequired(
            f"token {record.name!r} of {owner} expired on {record.expires_at:%Y-%m-%d}; ask an operator for a new one"
        )
    if record.ssh_session:
        _check_entry_point(session, record, address, entry_addresses)
    else:
        check_account_access(session, record.account, address)
    if record.last_used_address != address:
        audit.record(
            session,
            "token.new_address",
            actor=owner,
            address=address,
            token=record.name,
            previous=record.last_used_address,
        )
    if (
        record.last_used_address != address
        or not record.last_used_at
        or now - record.last_used_at > _LAST_USED_GRANULARITY
    ):
        record.last_used_at, record.last_used_address = now, address
        session.commit()
    return principal_for(session, record.account, address)


def check_account_access(session: Session, account: Account, address: str) -> None:
    """Refuse (and audit) an account that is not approved, or a caller outside its allowed networks."""
    _check_status(session, account, address)
    cidrs = [network.cidr for network in account.networks]
    if not address_in(address, cidrs):
        _refuse(session, account.username, address, "address not allowed")
        raise PermissionDenied(
            f"IP {address} is not in the allowed ranges of account {account.username}; ask an operator to run "
            f"`nephelae admin allow-ip {account.username} {_range_hint(address)}`"
        )


def _check_status(session: Session, account: Account, address: str) -> None:
    if account.status != "approved":
        _refuse(session, account.username, address, f"account {account.status}")
        raise PermissionDenied(_status_detail(account))


def _check_entry_point(session: Session, record: ApiToken, address: str, entry_addresses: Sequence[str]) -> None:
    """An SSH session's token: from the entry point only, on an account still approved and with a range."""
    owner = record.account.username
    if not address_in(address, entry_addresses):
        _refuse(session, owner, address, f"SSH session token {record.name} used away from the entry point")
        raise PermissionDenied(
            f"token {record.name!r} of {owner} belongs to an SSH session and works only on the SSH entry point"
        )
    _check_status(session, record.account, address)
    if not record.account.networks:
        _refuse(session, owner, address, "no allowed range")
        raise PermissionDenied(
            f"account {owner} has no allowed range; ask an operator to run `nephelae admin allow-ip {owner} CIDR`"
        )


def principal_for(session: Session, account: Account, address: str) -> Principal:
    return Principal(
        account_id=account.id,
        username=account.username,
        role=account.role,
        projects=tuple(projects_of(session, account)),
        address=address,
    )


def _status_detail(account: Account) -> str:
    if account.status == "pending":
        return f"account {account.username} is pending approval by an operator"
    if account.status == "suspended":
        return f"account {account.username} is suspended; contact the platform operators"
    return f"account {account.username} was {account.status}; contact the platform operators"


def _range_hint(address: str) -> str:
    try:
        return suggested_range(address)
    except ValueError:
        return "<CIDR>"


def _refuse(session: Session, actor: str | None, address: str, reason: str) -> None:
    audit.record(session, "access.refused", actor=actor, address=address, reason=reason)
    session.commit()
