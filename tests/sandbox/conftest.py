"""Sandbox fixtures: bubblewrap installed if missing, a platform home (see `tests.sandbox.layout`) and a worker."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nephelae.sandbox import SandboxedWorker
from tests.sandbox.layout import SMALL, Home, build_home

INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "bubblewrap"]


@pytest.fixture(scope="session", autouse=True)
def bubblewrap() -> str:
    """The bwrap executable, installed with apt-get when missing; a failure (never a skip) if that fails."""
    found = shutil.which("bwrap")
    if found is None:
        for command in (["apt-get", "update"], INSTALL):
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                pytest.fail(
                    f"bubblewrap is missing and `{' '.join(command)}` failed ({result.stderr.strip()[-500:]}); "
                    f"install it by hand (as root: apt-get update && {' '.join(INSTALL)}) and run the tests again",
                    pytrace=False,
                )
        found = shutil.which("bwrap")
    if found is None:
        pytest.fail("bubblewrap was installed but `bwrap` is not on PATH; add /usr/bin to PATH", pytrace=False)
    return found


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return build_home(tmp_path)


@pytest.fixture
def worker(home: Home) -> Iterator[SandboxedWorker]:
    """A sandboxed worker over `home`, with limits small enough to hit in a test."""
    with SandboxedWorker(home.mounts, SMALL, workdir=home.scratch) as worker:
        yield worker
