"""Fixtures of the HTTP tests: people made directly in the served database."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from nephelae.db import session_factory
from tests.api.support import People


@pytest.fixture
def people(engine: Engine) -> People:
    """Accounts and tokens created with the services, in the database the `server` fixture serves."""
    return People(session_factory(engine))
