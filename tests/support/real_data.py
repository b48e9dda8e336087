"""The real EO files of ../shared/data/real (read only: copy them to a temporary directory before writing)."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


def real_files(product: str, pattern: str = "*") -> list[Path]:
    """The files of one product folder (e.g. `ghrsst-l4-mur25-glob`); a clear failure, never a skip, if missing."""
    files = sorted(path for path in (REAL_DATA / product).glob(pattern) if path.is_file())
    if not files:
        pytest.fail(
            f"no real data under {REAL_DATA / product}: the tests expect the shared real EO files beside the "
            "project checkout (../shared/data/real, see its SOURCES.md)",
            pytrace=False,
        )
    return files
