"""A platform home for sandbox tests, laid out as in production.

alice's workspace (read-only, holds her script), bob's workspace beside it (exists on the host, never mounted), an
archive holding a copy of a real EO granule (read-only), and a task's output and scratch directories (writable).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from nephelae.sandbox import Limits, Mounts
from tests.support.real_data import real_files

USER_SCRIPT = Path(__file__).parent / "user_scripts" / "processor.py"
GRANULE_PRODUCT = "ghrsst-l4-mur25-glob"
SMALL = Limits(memory_mb=768, cpu_seconds=30, timeout_seconds=30, max_processes=16, max_file_mb=64)


@dataclass(frozen=True)
class Home:
    """The directories of one test's platform home."""

    alice: Path  # the workspace whose script runs (read-only)
    bob: Path  # another user's workspace: exists on the host, never mounted
    archive: Path  # a copy of a real granule (read-only)
    output: Path  # the task's output directory (writable)
    scratch: Path  # the task's scratch directory (writable)

    @property
    def script(self) -> Path:
        return self.alice / "processor.py"

    @property
    def granule(self) -> Path:
        return next(self.archive.glob("*.nc"))

    @property
    def mounts(self) -> Mounts:
        return Mounts(readonly=(self.alice, self.archive), writable=(self.output, self.scratch))


def build_home(root: Path) -> Home:
    """Create the home under `root`: alice's script, bob's secret, the granule copied from the shared real data."""
    workspaces = root / "home" / "workspaces"
    campaign = root / "home" / "campaigns" / "c1"
    home = Home(
        alice=workspaces / "alice",
        bob=workspaces / "bob",
        archive=root / "home" / "archive" / GRANULE_PRODUCT,
        output=campaign / "output",
        scratch=campaign / "scratch",
    )
    for directory in (home.alice, home.bob, home.archive, home.output, home.scratch):
        directory.mkdir(parents=True)
    shutil.copy(USER_SCRIPT, home.script)
    (home.bob / "secret.txt").write_text("bob's unpublished results\n")
    shutil.copy(real_files(GRANULE_PRODUCT, "*.nc")[0], home.archive)
    return home
