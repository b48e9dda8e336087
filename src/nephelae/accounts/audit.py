"""The audit log: security-relevant events (registration, decisions, refusals, new addresses), readable by admins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from nephelae.db.models import AuditEvent


def record(
    session: Session,
    kind: str,
    *,
    actor: str | None = None,
    subject: str | None = None,
    address: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an event to the session; the caller's commit makes it durable.

    `actor` did it (an account, or `operator:<login>` for commands run on the home), `subject` is the account it
    was done to, `address` where the actor connected from.
    """
    event = AuditEvent(kind=kind, actor=actor, subject=subject, address=address, detail=detail)
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    actor: str | None = None,
    involving: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """The newest events first; optionally only those done by `actor`, done by or to `involving`, of one kind."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if involving is not None:
        query = query.where(or_(AuditEvent.actor == involving, AuditEvent.subject == involving))
    if kind is not None:
        query = query.where(AuditEvent.kind == kind)
    return list(session.scalars(query))
