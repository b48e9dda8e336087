"""The sandbox's branch of the error tree.

`SandboxError` and its subclasses report what happened to user code (it raised, ran too long, or died); they carry
the user's traceback and the output the code printed, so that a processor's failure reaches the task log.
`SandboxSetupError` reports that the sandbox itself cannot be built (bubblewrap missing, a mount missing): that is the
operator's problem, hence a `ConfigurationError`.
"""

from __future__ import annotations

from nephelae.errors import ConfigurationError, NephelaeError


class SandboxError(NephelaeError):
    """User code run in the sandbox failed; `traceback` is the user's traceback, `log` what the code printed."""

    code = "sandbox_error"
    title = "Sandboxed code failed"

    def __init__(self, detail: str, traceback_text: str = "", *, log: str = "") -> None:
        super().__init__(detail)
        self.traceback = traceback_text
        self.log = log


class SandboxTimeout(SandboxError):
    """User code ran past its wall-clock limit and was killed with every process it started."""

    code = "sandbox_timeout"
    title = "Sandboxed code timed out"


class SandboxCrashed(SandboxError):
    """The sandboxed process died (segfault, a resource limit, `os._exit`); `exit_status` is how it ended.

    `exit_status` follows bubblewrap: the exit code of the process, or 128 + the signal that killed it.
    """

    code = "sandbox_crashed"
    title = "Sandboxed code crashed"

    def __init__(self, detail: str, traceback_text: str = "", *, log: str = "", exit_status: int | None = None) -> None:
        super().__init__(detail, traceback_text, log=log)
        self.exit_status = exit_status


class SandboxSetupError(ConfigurationError):
    """The sandbox cannot be built on this machine: bubblewrap missing or refused, a mount or the Python missing."""

    code = "sandbox_setup_error"
    title = "Sandbox cannot be set up"
