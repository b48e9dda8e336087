"""Escapes a user's script attempts from inside the sandbox: each must fail there, in the way the sandbox intends."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nephelae.sandbox import Limits, SandboxedWorker
from tests.sandbox.layout import SMALL, Home


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A real TCP server of the test on 127.0.0.1, reachable from the host (checked)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        yield port


def test_no_network_not_even_the_hosts_loopback(worker: SandboxedWorker, home: Home, listening_port: int) -> None:
    refused = worker.call(home.script, "connect", {"host": "127.0.0.1", "port": listening_port})
    assert refused == "ConnectionRefusedError"
    assert worker.call(home.script, "interfaces", {}) == ["lo"]  # a loopback of its own, nothing else
    assert worker.call(home.script, "resolve", {"name": "example.org"}) == "gaierror"


def _world_writable(*paths: Path) -> None:
    """So that only the read-only mount, not the files' modes, stands in the way."""
    for path in paths:
        path.chmod(0o777 if path.is_dir() else 0o666)


def test_the_archive_is_read_only(worker: SandboxedWorker, home: Home) -> None:
    _world_writable(home.archive, home.granule)
    before = home.granule.read_bytes()
    assert worker.call(home.script, "read", {"path": home.granule}) == "read"
    assert worker.call(home.script, "write", {"path": home.granule}) == "EROFS"
    assert worker.call(home.script, "write", {"path": home.archive / "new.nc"}) == "EROFS"
    assert home.granule.read_bytes() == before
    assert not (home.archive / "new.nc").exists()


def test_only_the_output_and_scratch_directories_are_writable(worker: SandboxedWorker, home: Home) -> None:
    for allowed in (home.output / "result.txt", home.scratch / "tmp.txt"):
        assert worker.call(home.script, "write", {"path": allowed}) == "written"
        assert allowed.read_text() == "written from the sandbox\n"
    _world_writable(home.alice, home.script)
    assert worker.call(home.script, "write", {"path": home.script}) == "EROFS"  # the user's own workspace
    system_file = Path("/usr/lib/escape")
    assert worker.call(home.script, "write", {"path": system_file}) == "EROFS"
    assert worker.call(home.script, "write", {"path": "/escape"}) == "EACCES"  # the sandbox's root is not theirs
    marker = Path(f"/tmp/nephelae-escape-{os.getpid()}")
    assert worker.call(home.script, "write", {"path": marker}) == "written"  # its private /tmp
    assert not marker.exists() and not system_file.exists() and not Path("/escape").exists()


def test_other_workspaces_and_host_secrets_are_not_visible(worker: SandboxedWorker, home: Home) -> None:
    assert (home.bob / "secret.txt").exists()
    assert worker.call(home.script, "read", {"path": home.bob / "secret.txt"}) == "ENOENT"
    assert worker.call(home.script, "listdir", {"path": home.alice.parent}) == ["alice"]
    assert worker.call(home.script, "read", {"path": "/etc/shadow"}) == "ENOENT"
    assert worker.call(home.script, "read", {"path": "/root/.bash_history"}) == "ENOENT"


def test_the_platforms_environment_does_not_leak(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEPHELAE_TOKEN", "secret")
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", "postgresql://nephelae:secret@db/nephelae")
    with SandboxedWorker(home.mounts, SMALL, workdir=home.scratch, env={"CAMPAIGN": "c1"}) as worker:
        environment = worker.call(home.script, "environment", {})
    assert environment["CAMPAIGN"] == "c1"
    assert not any(name.startswith("NEPHELAE_") for name in environment)
    assert not any("secret" in value for value in environment.values())


def test_user_code_runs_without_root_and_without_capabilities(worker: SandboxedWorker, home: Home) -> None:
    identity = worker.call(home.script, "whoami", {})
    assert identity["cap_eff"] == "0000000000000000"
    assert identity["hostname"] == "sandbox"
    if os.geteuid() == 0:
        assert identity["uid"] != 0
    assert worker.call(home.script, "shell_id", {}) == {"system": 0, "id": str(identity["uid"])}


def test_a_fork_bomb_stops_at_max_processes(home: Home) -> None:
    limits = Limits(memory_mb=768, cpu_seconds=30, timeout_seconds=30, max_processes=8, max_file_mb=64)
    with SandboxedWorker(home.mounts, limits, workdir=home.scratch) as worker:
        outcome = worker.call(home.script, "fork_bomb", {"attempts": 100})
        assert outcome["refusal"] == "EAGAIN"
        assert outcome["started"] < limits.max_processes
        assert worker.call(home.script, "fork_bomb", {"attempts": 3}) == {"started": 3, "refusal": "none"}
