"""Accounts: registration, and the operator's decisions (approve, reject, suspend, reinstate)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nephelae.accounts import audit
from nephelae.db.models import Account
from nephelae.errors import Conflict, InvalidInput, NotFound

STATUSES = ("pending", "approved", "rejected", "suspended")
ROLES = ("user", "admin")

# Usernames become directory and Unix login names: lower-case, starting with a letter, short.
USERNAME = re.compile(r"[a-z][a-z0-9_-]{1,31}")
# Names a Unix system or this platform already uses.
RESERVED_USERNAMES = frozenset(
    {
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "nobody",
        "sshd",
        "postgres",
        "nephelae",
        "operator",
        "systemd-network",
    }
)
# No control characters: PostgreSQL refuses NUL in text, and they have no place in an address.
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
IDENTIFIER = re.compile(r"[a-z][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Registration:
    """What a partner fills in to ask for an account."""

    username: str
    email: str
    full_name: str
    affiliation: str
    project: str
    justification: str


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise InvalidInput(
            f"username {username!r} is not allowed: use 2 to 32 characters, lower-case letters, digits, '-' or '_', "
            "starting with a letter (it becomes a directory and a Unix login name)"
        )
    if username in RESERVED_USERNAMES:
        raise InvalidInput(f"username {username!r} is reserved by the system; choose another")
    return username


def check_identifier(kind: str, value: str) -> str:
    """Project and dataset names: plain lower-case identifiers."""
    if not IDENTIFIER.fullmatch(value):
        raise InvalidInput(
            f"{kind} {value!r} is not a plain identifier: "
            "lower-case letters, digits, '-' or '_', starting with a letter"
        )
    return value


def _check_text(name: str, value: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise InvalidInput(f"{name} may not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    if any(ord(char) < 32 and char not in "\n\t" for char in value):
        raise InvalidInput(f"{name} contains control characters")
    return value


def register(session: Session, request: Registration, *, address: str | None = None, role: str = "user") -> Account:
    """Record a registration, `pending` until an operator decides."""
    username = check_username(request.username)
    email = request.email.strip().lower()
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise InvalidInput(f"{request.email!r} is not an e-mail address")
    account = Account(
        username=username,
        email=email,
        full_name=_check_text("full_name", request.full_name, 200),
        affiliation=_check_text("affiliation", request.affiliation, 200),
        requested_project=check_identifier("project", request.project.strip()),
        justification=_check_text("justification", request.justification, 5000),
        status="pending",
        role=role,
    )
    clash = session.scalar(select(Account).where(or_(Account.username == username, Account.email == email)))
    if clash is not None:
        field = "username" if clash.username == username else "e-mail address"
        raise Conflict(f"an account with this {field} already exists; choose another or ask an operator")
    session.add(account)
    audit.record(session, "account.registered", actor=username, address=address, project=account.requested_project)
    try:
        session.commit()
    except IntegrityError:  # a concurrent registration took the name or address since the check above
        session.rollback()
        raise Conflict("an account with this username or e-mail address already exists; choose another") from None
    return account


def get_account(session: Session, username: str) -> Account:
    account = session.scalar(select(Account).where(Account.username == username))
    if account is None:
        raise NotFound(f"no account named {username!r}; `nephelae admin accounts list` shows them")
    return account


def list_accounts(session: Session, status: str | None = None) -> list[Account]:
    query = select(Account).order_by(Account.created_at, Account.id)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        query = query.where(Account.status == status)
    return list(session.scalars(query))


# Which decision moves an account from which statuses to which.
_DECISIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "approve": (("pending", "rejected"), "approved"),
    "reject": (("pending",), "rejected"),
    "suspend": (("approved",), "suspended"),
    "reinstate": (("suspended",), "approved"),
}


def decide(session: Session, username: str, decision: str, *, actor: str | None = None) -> Account:
    """Apply an operator's decision; a decision that does not fit the account's status is a conflict."""
    sources, target = _DECISIONS[decision]
    account = get_account(session, username)
    if account.status not in sources:
        raise Conflict(f"cannot {decision} {username}: the account is {account.status}")
    account.status = target
    account.decided_at = dt.datetime.now(dt.UTC)
    account.decided_by = actor
    audit.record(session, f"account.{decision}", actor=actor, subject=username, status=target)
    session.commit()
    return account


def set_role(session: Session, username: str, role: str, *, actor: str | None = None) -> Account:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    account = get_account(session, username)
    account.role = role
    audit.record(session, "account.role", actor=actor, subject=username, role=role)
    session.commit()
    return account
