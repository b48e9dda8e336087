"""The process inside the sandbox: `python -I -B -m nephelae.sandbox.worker CONFIG` (CONFIG is JSON).

In "serve" mode it stays up and answers call requests from the platform (`nephelae.sandbox.protocol` on its stdin
and stdout), so a campaign pays one Python start-up per worker instead of one per task: it imports a user's script
once per content (keyed by path and SHA-256), calls the named function with the given keyword arguments, and sends
back the result or the user's traceback. In "run" mode it runs one script as `__main__` (`nephelae run SCRIPT.py`).

Before anything else it applies the resource limits and gives up root (`nephelae.sandbox.confine`). User code's
stdout and stderr go to the worker's stderr, a file the platform reads as the call's log, so print() cannot corrupt
the protocol. Standard library only: it must start fast and trust nothing the user can shadow.
"""

from __future__ import annotations

import faulthandler
import hashlib
import importlib.util
import json
import os
import runpy
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from nephelae.sandbox import confine, protocol

_PLATFORM_FILES = {__file__, runpy.__file__}  # frames of ours, left out of user tracebacks


def main(argv: list[str]) -> int:
    """Confine this process as CONFIG says, then serve calls or run the script."""
    config = json.loads(argv[0])
    confine.apply_limits(config["limits"])
    confine.drop_identity(config.get("uid"), config.get("gid"))
    faulthandler.enable()  # a segfault in a C extension leaves a Python traceback in the log
    if config["mode"] == "run":
        return run_script(Path(config["script"]), config["argv"])
    return serve()


def serve() -> int:
    """Answer requests until the platform closes the pipe."""
    requests, replies = _take_over_stdio()
    protocol.write_message(replies, {"op": "ready", "pid": os.getpid(), "uid": os.getuid()})
    modules = ModuleCache()
    workdir = Path.cwd()
    while (request := protocol.read_message(requests)) is not None:
        protocol.write_frame(replies, answer(request, modules))
        os.chdir(workdir)  # each call starts where the first did, whatever the last one did
    return 0


def _take_over_stdio() -> tuple[int, int]:
    """Keep stdin/stdout for the protocol on private descriptors; user code gets /dev/null and the log."""
    requests, replies = os.dup(0), os.dup(1)  # non-inheritable: user subprocesses do not get them
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return requests, replies


def answer(request: dict[str, Any], modules: ModuleCache) -> bytes:
    """Run one call request and return the framed reply: the result, or the error with the user's traceback."""
    confine.arm_cpu_limit(int(request["cpu_seconds"]))
    reply: dict[str, Any]
    try:
        function = modules.function(Path(request["script"]), request["function"])
        reply = {"op": "result", "value": function(**request["kwargs"])}
    except BaseException as error:  # anything user code raises, SystemExit included, goes back to the platform
        reply = _error_reply(error)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    reply["cpu_used"] = confine.cpu_time_used()
    try:
        return protocol.encode(reply)
    except (TypeError, ValueError) as error:
        message = f"the result of {request['function']} cannot be sent back: {error}; return JSON values"
        return protocol.encode({"op": "error", "message": message, "traceback": "", "cpu_used": reply["cpu_used"]})


def _error_reply(error: BaseException) -> dict[str, Any]:
    return {"op": "error", "message": f"{type(error).__name__}: {error}", "traceback": user_traceback(error)}


def user_traceback(error: BaseException) -> str:
    """The traceback from the first frame of user code on: the worker's and importlib's own frames are noise."""
    frames = error.__traceback__
    while frames is not None and _is_platform_frame(frames.tb_frame.f_code.co_filename):
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames))


def _is_platform_frame(filename: str) -> bool:
    return filename in _PLATFORM_FILES or filename.startswith("<frozen ")


class ModuleCache:
    """User scripts imported once per content: a script edited between calls is imported again."""

    def __init__(self) -> None:
        self._modules: dict[Path, tuple[str, ModuleType]] = {}

    def function(self, script: Path, name: str) -> Callable[..., Any]:
        """The function `name` of `script`, importing the script if it is new or changed."""
        found = getattr(self.module(script), name, None)
        if not callable(found):
            raise LookupError(f"{script} defines no function {name}")
        return found  # type: ignore[no-any-return]

    def module(self, script: Path) -> ModuleType:
        """`script` imported as a module of its own, its directory on sys.path for its helper modules."""
        digest = hashlib.sha256(script.read_bytes()).hexdigest()
        cached = self._modules.get(script)
        if cached is not None and cached[0] == digest:
            return cached[1]
        module = _import_file(script, f"nephelae_user_{digest[:16]}")
        self._modules[script] = (digest, module)
        return module


def _import_file(script: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"{script} cannot be imported as Python")
    if str(script.parent) not in sys.path:
        sys.path.append(str(script.parent))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def run_script(script: Path, argv: list[str]) -> int:
    """Run `script` as `__main__` with `argv`; an uncaught error prints the user's traceback and returns 1."""
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit:
        raise
    except BaseException as error:
        sys.stderr.write(user_traceback(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
