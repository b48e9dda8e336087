"""Running users' Python in the sandbox: a long-lived worker for campaigns, a one-shot run for `nephelae run`.

A `SandboxedWorker` keeps one sandboxed Python alive across calls, so a campaign of a million tasks does not pay a
million interpreter start-ups (and imports of numpy and xarray): one per campaign and Dask worker is the intent. When
a call times out or the worker dies, the next call starts a fresh worker on its own; the worker is also replaced
before it runs short of its CPU budget, so each call has its full `cpu_seconds`.
"""

from __future__ import annotations

import subprocess
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from nephelae.errors import InvalidInput
from nephelae.sandbox import protocol
from nephelae.sandbox.bwrap import bwrap_command, sandbox_environment, visible_path, worker_argv
from nephelae.sandbox.errors import SandboxCrashed, SandboxError, SandboxTimeout
from nephelae.sandbox.identity import Identity, give_directories, lease_identity
from nephelae.sandbox.policy import Limits, Mounts
from nephelae.sandbox.process import WorkerProcess, kill_sandbox, output_file, read_tail

CPU_BUDGET_CALLS = 8  # a worker's CPU budget (its hard RLIMIT_CPU), in calls' worth of cpu_seconds
START_TIMEOUT = 60.0  # seconds for a worker to start (imports on a cold, busy node included)
OUTPUT_LIMIT = 4 << 20  # bytes of stdout and of stderr that run_script keeps (the end of each)


@dataclass(frozen=True)
class CallResult:
    """What one call returned, what it printed (its log) and the wall time it took."""

    value: Any
    log: str
    seconds: float


class _Slot:
    """The worker's changing parts, kept apart so that a forgotten SandboxedWorker can still be cleaned up."""

    def __init__(self) -> None:
        self.process: WorkerProcess | None = None
        self.identity: Identity | None = None

    def discard_process(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def close(self) -> None:
        self.discard_process()
        if self.identity is not None:
            self.identity.release()
            self.identity = None


class SandboxedWorker:
    """A long-lived sandboxed Python process that runs functions of users' scripts, one call at a time.

    `mounts` and `limits` fix what the sandbox sees and may use (see `Mounts`, `Limits`); `workdir`, inside a mount,
    is its working directory; `env` adds variables to the minimal environment it gets (nothing of the platform's own
    environment reaches it). The process starts on the first call. Calls are serialised (thread-safe, not parallel).
    """

    def __init__(self, mounts: Mounts, limits: Limits, *, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self._mounts = mounts.resolved()
        self._limits = limits
        self._workdir = visible_path(workdir, self._mounts, "working directory")
        self._env = sandbox_environment(env)
        self._lock = threading.Lock()
        self._slot = _Slot()
        self._finalizer = weakref.finalize(self, self._slot.close)

    def call(self, script: Path, function: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
        """`function(**kwargs)` from `script`, run in the sandbox; its JSON-serialisable result.

        Raises SandboxError with the user's traceback if it raised, SandboxTimeout past `timeout` (default: the
        limits' `timeout_seconds`), SandboxCrashed if the worker died; the next call then starts a fresh worker.
        """
        return self.run(script, function, kwargs, timeout=timeout).value

    def run(self, script: Path, function: str, kwargs: dict[str, Any], *, timeout: float | None = None) -> CallResult:
        """Like `call`, with what the call printed and its duration: what a task log wants."""
        what = f"{script}:{function}"
        request = self._request(script, function, kwargs)
        with self._lock:
            process = self._ready_process()
            started = time.monotonic()
            try:
                limit = self._limits.timeout_seconds if timeout is None else timeout
                reply = process.exchange(request, limit, what)
            except (SandboxTimeout, SandboxCrashed):
                self._slot.discard_process()
                raise
            log = process.read_log()
            process.cpu_used = float(reply.get("cpu_used", process.cpu_used))
        if reply.get("op") != "result":
            raise SandboxError(str(reply.get("message", "unknown error")), str(reply.get("traceback", "")), log=log)
        return CallResult(value=reply.get("value"), log=log, seconds=time.monotonic() - started)

    @property
    def pid(self) -> int | None:
        """Host PID of the running sandbox (None before the first call): it stays the same while the worker lives."""
        process = self._slot.process
        return process.pid if process is not None else None

    def start(self) -> None:
        """Start the sandboxed worker now rather than on the first call (to pay its start-up ahead of time)."""
        with self._lock:
            self._ready_process()

    def interrupt(self) -> bool:
        """Kill the call in progress from another thread (its `run` raises SandboxCrashed); False if none runs.

        The worker starts afresh on its next call. For cancelled campaigns: their running tasks stop at once.
        """
        process = self._slot.process
        if process is None or not self._lock.locked():
            return False
        process.kill()
        return True

    def close(self) -> None:
        """Stop the worker and release its uid; the object may not be used afterwards."""
        with self._lock:
            self._finalizer()

    def __enter__(self) -> SandboxedWorker:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _request(self, script: Path, function: str, kwargs: dict[str, Any]) -> bytes:
        if not self._finalizer.alive:
            raise InvalidInput("this sandboxed worker is closed")
        if not function.isidentifier():
            raise InvalidInput(f"{function!r} is not a Python function name")
        path = visible_path(script, self._mounts, "script")
        message: dict[str, Any] = {"op": "call", "script": str(path), "function": function, "kwargs": kwargs}
        message["cpu_seconds"] = self._limits.cpu_seconds
        try:
            return protocol.encode(message)
        except (TypeError, ValueError) as error:
            raise InvalidInput(f"the arguments of {function} must be JSON-serialisable: {error}") from None

    def _ready_process(self) -> WorkerProcess:
        slot = self._slot
        process = slot.process
        budget = self._limits.cpu_seconds * CPU_BUDGET_CALLS
        if process is not None and (
            process.popen.poll() is not None or process.cpu_used + self._limits.cpu_seconds + 1 > budget
        ):
            slot.discard_process()  # dead since the last call, or too little CPU left for a full call
        if slot.process is None:
            if slot.identity is None:
                slot.identity = lease_identity()
                give_directories(slot.identity, self._mounts.writable)
            config = _worker_config(self._limits, slot.identity, mode="serve", cpu_soft=self._limits.cpu_seconds)
            command = bwrap_command(
                self._mounts, self._limits, workdir=self._workdir, identity=slot.identity, argv=worker_argv(config)
            )
            slot.process = WorkerProcess.start(command, self._env, START_TIMEOUT)
        return slot.process


def _worker_config(limits: Limits, identity: Identity | None, *, mode: str, cpu_soft: int) -> dict[str, Any]:
    cpu_hard = limits.cpu_seconds * (CPU_BUDGET_CALLS if mode == "serve" else 1) + 1
    rlimits = {**asdict(limits), "cpu_soft": cpu_soft, "cpu_hard": cpu_hard}
    return {
        "mode": mode,
        "limits": rlimits,
        "uid": identity.uid if identity else None,
        "gid": identity.gid if identity else None,
    }


def run_script(
    script: Path,
    argv: list[str],
    mounts: Mounts,
    limits: Limits,
    *,
    workdir: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a workspace script as `python SCRIPT ARGV...` in the sandbox, for `nephelae run SCRIPT.py`.

    Returns its exit status (bubblewrap's: 128 + N when killed by signal N) and the last OUTPUT_LIMIT bytes of its
    stdout and stderr; `args` is `[script, *argv]`. Raises SandboxTimeout (with the end of stderr as `log`) after
    `limits.timeout_seconds`.
    """
    resolved = mounts.resolved()
    path = visible_path(script, resolved, "script")
    cwd = visible_path(workdir, resolved, "working directory")
    identity = lease_identity()
    try:
        give_directories(identity, resolved.writable)
        config = {**_worker_config(limits, identity, mode="run", cpu_soft=limits.cpu_seconds), "script": str(path)}
        config["argv"] = list(argv)
        command = bwrap_command(resolved, limits, workdir=cwd, identity=identity, argv=worker_argv(config))
        return _run_captured(command, sandbox_environment(env), limits.timeout_seconds, [str(path), *argv])
    finally:
        if identity is not None:
            identity.release()


def _run_captured(
    command: list[str], env: dict[str, str], timeout: float, args: list[str]
) -> subprocess.CompletedProcess[bytes]:
    with output_file() as stdout, output_file() as stderr:
        popen = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, cwd="/", start_new_session=True
        )
        try:
            status = popen.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_sandbox(popen)
            log = read_tail(stderr).decode("utf-8", "replace")
            raise SandboxTimeout(f"{args[0]} did not finish within {timeout:g} s and was killed", log=log) from None
        return subprocess.CompletedProcess(
            args, status, read_tail(stdout, OUTPUT_LIMIT), read_tail(stderr, OUTPUT_LIMIT)
        )
