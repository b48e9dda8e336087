"""Sandbox fixtures: bubblewrap installed if missing, a platform home (see `tests.sandbox.layout`) and a worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nephelae.sandbox import SandboxedWorker
from tests.sandbox.layout import SMALL, Home, build_home
from tests.support.system import ensure_tool


@pytest.fixture(scope="session", autouse=True)
def bubblewrap() -> str:
    """The bwrap executable, installed with apt-get when missing; a failure (never a skip) if that fails."""
    return ensure_tool("bwrap", "bubblewrap")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return build_home(tmp_path)


@pytest.fixture
def worker(home: Home) -> Iterator[SandboxedWorker]:
    """A sandboxed worker over `home`, with limits small enough to hit in a test."""
    with SandboxedWorker(home.mounts, SMALL, workdir=home.scratch) as worker:
        yield worker
