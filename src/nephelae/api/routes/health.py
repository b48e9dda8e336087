"""`GET /api/v1/health`: is the platform up, and is its database reachable and migrated?"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from nephelae import __version__
from nephelae.api.deps import EngineDep
from nephelae.db import backend_name, current_revision, head_revision

router = APIRouter(tags=["platform"])


class DatabaseHealth(BaseModel):
    backend: str
    revision: str | None
    up_to_date: bool


class Health(BaseModel):
    status: str
    version: str
    database: DatabaseHealth


@router.get("/health", summary="Platform health")
def health(engine: EngineDep) -> Health:
    """Answers 200 when the database is reachable; 503 as a problem otherwise."""
    revision = current_revision(engine)
    up_to_date = revision == head_revision()
    return Health(
        status="ok" if up_to_date else "degraded",
        version=__version__,
        database=DatabaseHealth(backend=backend_name(engine), revision=revision, up_to_date=up_to_date),
    )
