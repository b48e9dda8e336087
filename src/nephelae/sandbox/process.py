"""One running sandbox, seen from the platform: the bubblewrap process, its pipes, its log file, how it ended.

Every wait has a deadline (the protocol pipes are non-blocking and polled), so a sandbox that hangs, or fills a pipe
and stops reading, costs its timeout and nothing more. Killing sends SIGKILL to bubblewrap's process group;
bubblewrap's `--die-with-parent` and the PID namespace take every process of the sandbox with it, including those
that started sessions of their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import subprocess
import tempfile
import time
from typing import IO, Any

from nephelae.sandbox import protocol
from nephelae.sandbox.errors import SandboxCrashed, SandboxSetupError, SandboxTimeout

LOG_LIMIT = 1 << 20  # bytes of a call's output kept for the task log (the end of it)
STOP_GRACE = 5.0  # seconds a worker gets to exit after its stdin closes


class Expired(Exception):
    """A deadline passed while waiting on the sandbox."""


def output_file() -> IO[bytes]:
    """An anonymous host file for a sandbox's output, opened in append mode so truncating it between calls works.

    Its size is bounded by RLIMIT_FSIZE in the sandbox; the platform only ever reads its last LOG_LIMIT bytes.
    """
    file = tempfile.TemporaryFile()  # noqa: SIM115 - the caller owns and closes it
    flags = fcntl.fcntl(file.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    return file


def read_tail(file: IO[bytes], limit: int = LOG_LIMIT) -> bytes:
    """The last `limit` bytes written to `file`, with a note of how much was dropped before them."""
    size = os.fstat(file.fileno()).st_size
    start = max(0, size - limit)
    data = os.pread(file.fileno(), size - start, start)
    return f"[{start} bytes of earlier output dropped]\n".encode() + data if start else data


def describe_exit(status: int | None) -> str:
    """How a sandbox ended, in words; bubblewrap reports death by signal N as status 128 + N."""
    if status is None:
        return "still running"
    if status > 128 and status - 128 in signal.valid_signals():
        number = signal.Signals(status - 128)
        cause = _SIGNAL_CAUSES.get(number, "")
        return f"killed by {number.name}{f' ({cause})' if cause else ''}"
    return f"exited with status {status}"


_SIGNAL_CAUSES = {
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGKILL: "a hard resource limit, or the machine ran out of memory",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGABRT: "aborted",
    signal.SIGXFSZ: "file size limit exceeded",
}


def kill_sandbox(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL bubblewrap's process group and reap it; the sandbox's processes die with it."""
    if popen.poll() is None:  # once reaped, its PID (and group id) may belong to someone else
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


class WorkerProcess:
    """A started sandboxed worker (see `nephelae.sandbox.worker`) and the host ends of its pipes and log."""

    def __init__(self, popen: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self.popen = popen
        self.log = log
        self.cpu_used = 0.0  # CPU seconds the worker reported after its last call
        assert popen.stdin is not None and popen.stdout is not None
        self._requests = popen.stdin.fileno()
        self._replies = popen.stdout.fileno()
        os.set_blocking(self._requests, False)
        os.set_blocking(self._replies, False)

    @classmethod
    def start(cls, command: list[str], env: dict[str, str], timeout: float) -> WorkerProcess:
        """Start `command` and wait for the worker's hello; SandboxSetupError if it never comes."""
        log = output_file()
        popen = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd="/", start_new_session=True
        )
        process = cls(popen, log)
        try:
            hello = process.receive(time.monotonic() + timeout)
        except (Expired, protocol.ProtocolError):
            hello = None
        if hello is None or hello.get("op") != "ready":
            process.kill()
            output = read_tail(log, 4096).decode("utf-8", "replace").strip()
            process.close_files()
            raise SandboxSetupError(
                f"the sandboxed worker did not start ({describe_exit(popen.returncode)}): {output or 'no output'}"
            )
        return process

    @property
    def pid(self) -> int:
        """Host PID of the sandbox (its bubblewrap process)."""
        return self.popen.pid

    def exchange(self, request: bytes, timeout: float, what: str) -> dict[str, Any]:
        """Send one framed request and return the reply; SandboxTimeout or SandboxCrashed (worker killed) if none."""
        self.log.truncate(0)
        deadline = time.monotonic() + timeout
        try:
            self.send(request, deadline)
            reply = self.receive(deadline)
        except Expired:
            self.kill()
            message = f"{what} did not finish within {timeout:g} s; it was killed with every process it started"
            raise SandboxTimeout(message, log=self.read_log()) from None
        except (BrokenPipeError, protocol.ProtocolError) as error:
            self.kill()
            message = f"{what}: the worker broke the protocol ({error}) and was killed"
            raise SandboxCrashed(message, log=self.read_log(), exit_status=self.popen.returncode) from None
        if reply is None:
            status = self._exit_status()
            message = f"{what}: the sandboxed worker {describe_exit(status)}"
            raise SandboxCrashed(message, log=self.read_log(), exit_status=status)
        return reply

    def _exit_status(self) -> int:
        """The status of a worker that closed its end of the protocol, killing it if that did not end it."""
        try:
            return self.popen.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            kill_sandbox(self.popen)
            return self.popen.returncode

    def read_log(self) -> str:
        """What the sandbox printed since the current call started (its tail)."""
        return read_tail(self.log).decode("utf-8", "replace")

    def send(self, data: bytes, deadline: float) -> None:
        """Write all of `data` to the worker's stdin before `deadline`."""
        view = memoryview(data)
        with selectors.DefaultSelector() as selector:
            selector.register(self._requests, selectors.EVENT_WRITE)
            while view:
                _wait(selector, deadline)
                try:
                    view = view[os.write(self._requests, view) :]
                except BlockingIOError:
                    continue

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message from the worker; None if it closed its stdout (it died) before sending one."""
        header = self._read_exact(protocol.HEADER.size, deadline)
        if header is None:
            return None
        body = self._read_exact(protocol.body_length(header), deadline)
        if body is None:
            raise protocol.ProtocolError("the worker died inside a message")
        return protocol.decode(body)

    def _read_exact(self, size: int, deadline: float) -> bytes | None:
        data = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(self._replies, selectors.EVENT_READ)
            while len(data) < size:
                _wait(selector, deadline)
                try:
                    chunk = os.read(self._replies, size - len(data))
                except BlockingIOError:
                    continue
                if not chunk:
                    return None
                data += chunk
        return bytes(data)

    def stop(self) -> None:
        """Ask the worker to exit (end of its stdin), kill it if it does not, and release the host files."""
        if self.popen.returncode is None:
            self.close_pipes()
            try:
                self.popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                kill_sandbox(self.popen)
        self.close_files()

    def kill(self) -> None:
        """Kill the whole sandbox now."""
        kill_sandbox(self.popen)
        self.close_pipes()

    def close_pipes(self) -> None:
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def close_files(self) -> None:
        self.close_pipes()
        self.log.close()


def _wait(selector: selectors.BaseSelector, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not selector.select(remaining):
        raise Expired
