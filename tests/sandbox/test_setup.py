"""What the caller gets wrong, and what the machine lacks: clear errors before any user code runs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from nephelae.errors import ConfigurationError, InvalidInput
from nephelae.sandbox import Limits, Mounts, SandboxedWorker, SandboxSetupError
from nephelae.sandbox.bwrap import bwrap_command
from tests.sandbox.layout import SMALL, Home


def test_a_machine_without_bubblewrap_says_how_to_install_it(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(home.scratch))
    worker = SandboxedWorker(home.mounts, SMALL, workdir=home.scratch)
    with worker, pytest.raises(SandboxSetupError, match="apt-get install bubblewrap") as raised:
        worker.call(home.script, "imports", {})
    assert isinstance(raised.value, ConfigurationError)
    assert raised.value.code == "sandbox_setup_error"


def test_a_missing_mount_is_a_setup_error(home: Home) -> None:
    mounts = Mounts(readonly=(home.alice, home.archive / "gone"), writable=(home.output,))
    with pytest.raises(SandboxSetupError, match="gone does not exist"):
        SandboxedWorker(mounts, SMALL, workdir=home.alice)


@pytest.mark.parametrize(
    ("mounts", "message"),
    [
        (Mounts(readonly=(Path("/"),)), "may not mount /"),
        (Mounts(writable=(Path(sys.prefix),)), "may not be writable"),
        (Mounts(readonly=(Path("/proc"),)), "has its own /tmp, /proc and /dev"),
    ],
)
def test_mounts_that_would_open_the_sandbox_are_refused(home: Home, mounts: Mounts, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        bwrap_command(mounts.resolved(), SMALL, workdir=home.alice, identity=None, argv=["true"])


def test_a_directory_both_readonly_and_writable_is_refused(home: Home) -> None:
    with pytest.raises(InvalidInput, match="both read-only and writable"):
        Mounts(readonly=(home.output,), writable=(home.output,)).resolved()


def test_workdir_and_script_must_be_visible_in_the_sandbox(home: Home) -> None:
    with pytest.raises(InvalidInput, match=r"working directory .* is not inside a directory mounted"):
        SandboxedWorker(home.mounts, SMALL, workdir=home.bob)
    with SandboxedWorker(home.mounts, SMALL, workdir=home.scratch) as worker:
        with pytest.raises(InvalidInput, match="is not a Python function name"):
            worker.call(home.script, "imports; import os", {})
        assert worker.pid is None  # nothing was started for calls refused up front


def test_limits_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="memory_mb must be positive"):
        Limits(memory_mb=0)


def test_a_worker_that_cannot_start_reports_why(home: Home) -> None:
    worker = SandboxedWorker(home.mounts, SMALL, workdir=home.scratch)
    shutil.rmtree(home.archive)  # gone between the campaign's set-up and its first task
    with worker, pytest.raises(SandboxSetupError, match=r"did not start \(exited with status 1\): bwrap: .*archive"):
        worker.call(home.script, "imports", {})
