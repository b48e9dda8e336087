"""CF-1.8 compliance of the NetCDF files Nephelae writes, judged by the IOOS compliance-checker run in-process."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from compliance_checker.base import BaseCheck
from compliance_checker.runner import CheckSuite

CHECKER = "cf:1.8"


def high_priority_failures(path: Path) -> list[str]:
    """The high-priority CF-1.8 failures of one file, as `section: message` lines (empty when compliant)."""
    with warnings.catch_warnings():
        # Offline, the checker cannot fetch the standard name table a file names and uses its packaged one; its
        # plugins warn of their own deprecations when loaded.
        warnings.filterwarnings("ignore", message="Problem fetching standard name table", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        suite = CheckSuite()
        suite.load_all_available_checkers()
        dataset = suite.load_dataset(str(path))
        try:
            groups = suite.run_all(dataset, [CHECKER], [], [])
        finally:
            dataset.close()
    results, errors = groups[CHECKER]
    failures = [f"{name}: checker error {error}" for name, error in errors.items()]
    for result in results:
        scored, possible = result.value if isinstance(result.value, tuple) else (int(result.value), 1)
        # A check with 0 possible points did not apply to this file (the checker's own report skips it too).
        if result.weight == BaseCheck.HIGH and possible and scored < possible:
            messages = "; ".join(result.msgs) or "failed"
            failures.append(f"{result.name}: {messages}")
    return failures


def assert_cf_compliant(path: Path) -> None:
    """Fail the test, listing the problems, when the file has any high-priority CF-1.8 failure."""
    failures = high_priority_failures(path)
    if failures:
        listing = "\n  ".join(failures)
        pytest.fail(f"{path.name} is not CF-1.8 compliant (high-priority failures):\n  {listing}", pytrace=False)
