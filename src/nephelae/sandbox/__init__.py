"""Users' Python code run under bubblewrap: no network, read-only data, private /tmp, resource limits, timeouts.

`SandboxedWorker` keeps one sandboxed interpreter alive across many calls (a campaign's processor on a Dask worker);
`run_script` runs one script (`nephelae run SCRIPT.py`). What the sandbox sees is given by `Mounts`, what it may use
by `Limits`. Failures of user code are `SandboxError` (with the user's traceback and output), `SandboxTimeout` and
`SandboxCrashed`; a machine that cannot build the sandbox raises `SandboxSetupError`.
"""

from nephelae.sandbox.errors import SandboxCrashed, SandboxError, SandboxSetupError, SandboxTimeout
from nephelae.sandbox.policy import Limits, Mounts
from nephelae.sandbox.runner import CallResult, SandboxedWorker, run_script

__all__ = [
    "CallResult",
    "Limits",
    "Mounts",
    "SandboxCrashed",
    "SandboxError",
    "SandboxSetupError",
    "SandboxTimeout",
    "SandboxedWorker",
    "run_script",
]
