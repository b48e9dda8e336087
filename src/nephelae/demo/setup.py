"""`nephelae demo`: a complete platform on one machine, from nothing, for a newcomer to try."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nephelae.analysis.quicklooks import render_demo_quicklooks
from nephelae.config import Settings
from nephelae.db import make_engine, session_factory
from nephelae.demo.accounts import set_up_people
from nephelae.demo.archive import build_demo_archive
from nephelae.demo.campaign import run_example_campaign
from nephelae.demo.catalog import register_and_index

CREDENTIALS_FILE = "demo-credentials.json"

Progress = Callable[[str, int, int], None]


def set_up_demo(settings: Settings, *, days: int = 60, progress: Progress | None = None) -> dict[str, Any]:
    """Build the demo archive, its catalog, accounts and project in the home (idempotent); write the credentials.

    The database must already be migrated. Returns the credentials written.
    """
    datasets = build_demo_archive(settings.archive_dir, days=days, progress=progress)
    path = settings.home / CREDENTIALS_FILE
    engine = make_engine(settings.database)
    try:
        register_and_index(engine, datasets, progress)
        with session_factory(engine)() as session:
            people = set_up_people(session, [dataset.id for dataset in datasets], _read_credentials(path))
        run_example_campaign(settings, engine, people["user"]["username"])
        render_demo_quicklooks(settings, engine)
    finally:
        engine.dispose()
    credentials: dict[str, Any] = {"url": settings.url, **people}
    write_credentials(path, credentials)
    return credentials


def _read_credentials(path: Path) -> dict[str, Any]:
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def write_credentials(path: Path, credentials: dict[str, Any]) -> None:
    """Write the file readable by its owner only: it holds tokens."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(credentials, handle, indent=2)
        handle.write("\n")
    temporary.replace(path)
