"""`nephelae run SCRIPT.py`: a workspace script run once in the sandbox, next to the archive.

The sandbox sees the caller's workspace (writable, its working directory), the local roots of the datasets the caller
may read (read-only), and the Python installation with `nephelae.toolbox` and xarray; no network, no other workspace,
nothing else of the host. Its wall-clock and memory limits are the campaign task defaults (`task_timeout_seconds`,
`task_memory_mb`). Every run is audited.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from nephelae.accounts import Principal, audit
from nephelae.catalog.datasets import list_datasets
from nephelae.config import Settings
from nephelae.db.locks import file_lock
from nephelae.errors import InvalidInput
from nephelae.sandbox import Limits, Mounts, SandboxTimeout, run_script
from nephelae.workspaces.files import open_file
from nephelae.workspaces.paths import Workspace, parse_path

MAX_ARGS = 256
MAX_ARG_CHARS = 4096
OUTPUT_TAIL = 1 << 20  # characters of stdout and of stderr returned
DEFAULT_TIMEOUT = 900.0  # seconds, when task_timeout_seconds is unset: a synchronous run is never unbounded
DEFAULT_MEMORY_MB = 4096
SANDBOX_OWN = (Path("/proc"), Path("/dev"))  # the sandbox has its own; a dataset root there is not mounted
SANDBOX_TMP = Path("/tmp")  # noqa: S108 - the same: its own /tmp (directories inside the host's may be mounted)


@dataclass(frozen=True)
class RunResult:
    """How a script ended: its exit status (128 + N if killed by signal N), the end of its output, wall time."""

    exit_status: int
    stdout: str
    stderr: str
    duration: float


def run_workspace_script(
    session: Session, settings: Settings, principal: Principal, script: str, argv: Sequence[str]
) -> RunResult:
    """Run `python SCRIPT ARGV...` from the caller's workspace in the sandbox, and audit it.

    Raises InvalidInput for a bad path or argument, NotFound for a missing script, SandboxTimeout past the limit.
    """
    workspace = Workspace.of(settings.workspaces_dir, principal.username)
    path = _script_path(workspace, script)
    args = _checked_args(argv)
    mounts = Mounts(readonly=readable_roots(session, settings, principal), writable=(workspace.root,))
    started = time.monotonic()
    what: dict[str, Any] = {"script": script, "args": len(args)}
    try:
        with workspace_lock(settings.workspaces_dir, principal.username, shared=True):
            completed = run_script(path, args, mounts, run_limits(settings), workdir=workspace.root)
    except SandboxTimeout:
        _record(session, principal, what, status="timeout", seconds=time.monotonic() - started)
        raise
    duration = time.monotonic() - started
    _record(session, principal, what, status=completed.returncode, seconds=duration)
    return RunResult(completed.returncode, _tail(completed.stdout), _tail(completed.stderr), round(duration, 3))


@contextmanager
def workspace_lock(workspaces_dir: Path, username: str, *, shared: bool) -> Iterator[None]:
    """Keep sandboxed runs (`shared`) and the SSH gateway's commands on local files (exclusive) of one workspace apart.

    A running script may plant symbolic links in its workspace at any moment, and the gateway's CLI reads and writes
    its arguments by path, as the platform's own user: a link swapped in between the gateway's check and the CLI's
    open would reach the platform's files. Either side is refused while the other holds the workspace. The lock
    file lies next to the workspace, where no sandbox reaches (usernames start with a letter).
    """
    with file_lock(workspaces_dir / f".{username}.lock", _busy(shared), shared=shared, mode=0o644):
        yield


def _busy(shared: bool) -> str:
    if shared:
        return (
            "an SSH command of yours is reading or writing files in your workspace (files put/get, campaigns submit, "
            "analysis -o); run the script when it has ended"
        )
    return (
        "a script of yours is running in your workspace (`nephelae run`), and files are not read or written through "
        "SSH meanwhile; try again when it has ended"
    )


def run_limits(settings: Settings) -> Limits:
    """The limits of a run: the campaign task defaults, bounded even when those are unset."""
    timeout = float(settings.task_timeout_seconds or DEFAULT_TIMEOUT)
    memory = settings.task_memory_mb or DEFAULT_MEMORY_MB
    max_file = min(4096, settings.workspace_quota_mb or 4096)
    return Limits(memory_mb=memory, cpu_seconds=int(timeout) + 1, timeout_seconds=timeout, max_file_mb=max_file)


def readable_roots(session: Session, settings: Settings, principal: Principal) -> tuple[Path, ...]:
    """The local directories of the datasets `principal` may read, minus any that would show a workspace."""
    workspaces = settings.workspaces_dir.resolve()
    roots: list[Path] = []
    for dataset in list_datasets(session, principal):
        if "://" in dataset.root:
            continue  # an object store: read through fsspec, nothing to mount
        root = Path(dataset.root).resolve()
        overlaps = root == workspaces or workspaces in root.parents or root in workspaces.parents
        built_by_sandbox = root == SANDBOX_TMP or any(root == path or path in root.parents for path in SANDBOX_OWN)
        if root.is_dir() and not overlaps and not built_by_sandbox:
            roots.append(root)
    return tuple(dict.fromkeys(roots))


def _script_path(workspace: Workspace, script: str) -> Path:
    opened = open_file(workspace, script)  # checks the path, refuses links out, directories, FIFOs
    opened.close()
    return workspace.root.resolve().joinpath(*workspace.resolve(parse_path(script)).parts)


def _checked_args(argv: Sequence[str]) -> list[str]:
    if len(argv) > MAX_ARGS:
        raise InvalidInput(f"a run takes at most {MAX_ARGS} arguments, not {len(argv)}")
    for arg in argv:
        if "\0" in arg or len(arg) > MAX_ARG_CHARS:
            raise InvalidInput(f"argument {arg[:40]!r}... holds a NUL or is longer than {MAX_ARG_CHARS} characters")
    return list(argv)


def _tail(output: bytes) -> str:
    return output[-OUTPUT_TAIL:].decode("utf-8", "replace")


def _record(session: Session, principal: Principal, what: dict[str, Any], *, status: object, seconds: float) -> None:
    audit.record(
        session,
        "workspace.run",
        actor=principal.username,
        address=principal.address,
        exit_status=status,
        seconds=round(seconds, 3),
        **what,
    )
    session.commit()
