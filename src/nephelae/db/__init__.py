"""Persistence: engine and sessions, the models, and the Alembic migrations that create them."""

from nephelae.db.engine import backend_name, check_connection, make_engine, session_factory
from nephelae.db.migrate import current_revision, head_revision, upgrade
from nephelae.db.models import AuditEvent, Base

__all__ = [
    "AuditEvent",
    "Base",
    "backend_name",
    "check_connection",
    "current_revision",
    "head_revision",
    "make_engine",
    "session_factory",
    "upgrade",
]
