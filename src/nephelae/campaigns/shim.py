"""The sandbox's side of a campaign task: the platform's code that runs inside the sandbox, around the user's.

A workspace script (`path.py:function`) runs in a long-lived `SandboxedWorker`, which imports this file (mounted
read-only) and calls `run_processor` once per task: it opens the inputs, calls the user's `process(inputs,
parameters)`, checks that a Dataset came back and writes it, with the CF and provenance attributes, to the staged
output path. All of it happens in the sandbox, so data never crosses the pipe and the platform never parses a file
made by user code. Failures come back as a reply `{"error", "traceback", "retryable"}`, the traceback starting at the
user's first frame.

A command (`{command: [...]}`) runs through `run_script`, which runs this file as a script: `shim.py TASK.json` runs
the command without a shell, then checks and annotates the output it wrote, and writes a JSON report for the platform.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import dask
import xarray as xr

from nephelae.campaigns.outputs import annotate_netcdf, close_all, open_inputs, write_netcdf
from nephelae.errors import InvalidInput, NephelaeError
from nephelae.sandbox.worker import ModuleCache

PACKAGE_DIR = str(Path(__file__).resolve().parents[1])  # the nephelae package: our frames, not the user's
_SCRIPTS = ModuleCache()  # user scripts, imported once per content for the life of the sandboxed worker


def prepare() -> dict[str, int]:
    """Called on a fresh sandboxed worker before its first task: the imports are done, Dask set to this thread."""
    _settle()
    return {"pid": os.getpid()}


def run_processor(
    script: str,
    function: str,
    inputs: dict[str, list[str]],
    parameters: dict[str, Any],
    output: str,
    scratch: str,
    provenance: dict[str, str],
) -> dict[str, Any]:
    """Run one task of the user's `script:function` and write its result to `output`; a reply for the platform.

    The call runs in `scratch` (created here, inside the sandbox, so that the sandbox's own user may write it).
    """
    _settle()
    Path(scratch).mkdir(exist_ok=True)
    os.chdir(scratch)
    datasets: dict[str, xr.Dataset] = {}
    try:
        process = _SCRIPTS.function(Path(script), function)
        datasets = open_inputs(inputs)
        result = process(datasets, parameters)
        if not isinstance(result, xr.Dataset):
            message = f"{function} returned {_type_name(result)}, not an xarray.Dataset; return the dataset to write"
            return failure(message, retryable=False)
        write_netcdf(result, Path(output), provenance)
    except BaseException as error:  # whatever user code raises, SystemExit included, is the task's failure
        Path(output).unlink(missing_ok=True)
        return failure(describe(error), user_traceback(error), retryable=not isinstance(error, InvalidInput))
    finally:
        close_all(datasets.values())
    return {"output": output}


def run_command(argv: list[str], output: Path, provenance: dict[str, str]) -> dict[str, Any]:
    """Run a command processor, then check that it wrote a readable NetCDF `output` and annotate it."""
    try:
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False)
    except OSError as error:
        return failure(f"cannot run {argv[0]}: {error.strerror}", retryable=False)
    if completed.returncode != 0:
        status = completed.returncode if completed.returncode > 0 else 128 - completed.returncode
        return failure(f"{argv[0]} exited with status {status}", retryable=True) | {"status": status}
    if output.is_symlink() or not output.is_file():
        return failure(f"{argv[0]} exited with status 0 but wrote no output file at {{output}}", retryable=False)
    try:
        annotate_netcdf(output, provenance)
    except Exception as error:
        return failure(
            f"the output of {argv[0]} is not a NetCDF file xarray can read: {describe(error)}", retryable=False
        )
    return {"output": str(output)}


def main(argv: list[str]) -> int:
    """`shim.py TASK.json`: run the command the task file describes and write the report it names."""
    _settle()
    task = json.loads(Path(argv[0]).read_text())
    reply = run_command(task["argv"], Path(task["output"]), task["provenance"])
    Path(task["report"]).write_text(json.dumps(reply))
    return 1 if "error" in reply else 0


def failure(message: str, traceback_text: str = "", *, retryable: bool) -> dict[str, Any]:
    """The reply of a failed task."""
    return {"error": message, "traceback": traceback_text, "retryable": retryable}


def describe(error: BaseException) -> str:
    """An error in one line, as a task's error message."""
    if isinstance(error, NephelaeError):
        return error.detail
    return f"{type(error).__name__}: {error}"


def user_traceback(error: BaseException) -> str:
    """The traceback from the first frame outside the platform (the user's), or just the error if there is none."""
    frames = error.__traceback__
    while frames is not None and _is_ours(frames.tb_frame.f_code.co_filename):
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames))


def _is_ours(filename: str) -> bool:
    return filename.startswith((PACKAGE_DIR, "<frozen "))


def _type_name(value: object) -> str:
    return "None" if value is None else f"a {type(value).__module__}.{type(value).__qualname__}"


def _settle() -> None:
    """Dask on the calling thread (a sandbox is one task at a time, and its threads count against its process limit);
    and this file's directory off `sys.path`, where importing it put it, so that it shadows no module of the user's."""
    dask.config.set(scheduler="synchronous")
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [entry for entry in sys.path if entry != here]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
