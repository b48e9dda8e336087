"""One campaign task on a Dask worker: `run_task(TaskRequest) -> TaskResult`, its output written exactly once.

The output of a task is named by its key (`outputs.output_path`). If it exists, it is complete (it only ever gets its
name once written and synced), and the task returns it as reused without running anything. Otherwise the processor
runs and its result is published under the key (`outputs.publish`): a crash leaves at most a hidden temporary file,
never a partial output, and a duplicate run of the same task leaves one intact output.

Processors, from the spec's processor document:
- built-in (`nephelae.processors:NAME`): called in this process on the inputs opened lazily, computed on this thread;
- workspace script (`path.py:function`): called in a long-lived `SandboxedWorker`, one per worker process, campaign
  and configuration, reused across tasks (`shim.run_processor` opens the inputs, calls the user's function and writes
  the output inside the sandbox). The sandbox sees the workspace and the input archives read-only, and writes only a
  staging directory of its own inside the output dataset (hidden, same file system), from which the platform moves
  the output into place after checking it;
- command (`{command: [...]}`): one sandboxed process per task, no shell (`shim.main` runs it and checks its output),
  with the task's scratch directory as working directory.

A processor's failure is a `TaskResult` with `error` (its message and traceback, and whether a retry may help);
an exception out of `run_task` is the platform's failure. Everything goes to the task's log, one section per attempt.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import xarray as xr

from nephelae.campaigns.outputs import (
    TaskLog,
    adopt,
    close_all,
    discard,
    new_staging,
    open_inputs,
    output_path,
    output_size,
    provenance,
    publish,
    temporary_path,
    write_netcdf,
    write_zarr_store,
)
from nephelae.campaigns.spec import ProcessorRef, parse_processor, render_command
from nephelae.campaigns.tasks import TaskOutput, TaskRequest, TaskResult
from nephelae.errors import InvalidInput
from nephelae.sandbox import Limits, Mounts, SandboxedWorker, SandboxError, run_script

SHIM = Path(__file__).with_name("shim.py").resolve()
IDLE_SANDBOXES = 8  # sandboxed workers a process keeps for later tasks
PREPARE_TIMEOUT = 120.0  # seconds for a fresh sandboxed worker to import xarray & co. before its first task
REPORT_LIMIT = 1 << 20
ERROR_TAIL = 2000  # characters of a command's stderr quoted in the task's error


# The netCDF-C and HDF5 libraries are not thread-safe, and xarray reads a file's metadata outside its own locks when
# opening it: two tasks opening files at once in one process crash it (a segfault, seen in the tests). Built-in tasks
# of one process therefore run one at a time; give Dask workers one thread each, and more processes, for parallelism.
_netcdf_library = threading.Lock()


class ProcessorFailure(Exception):
    """The processor failed (not the platform): the task's error, its traceback, and whether a retry may help."""

    def __init__(self, message: str, traceback_text: str = "", *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.traceback = traceback_text
        self.retryable = retryable


Runner = Callable[[TaskRequest, ProcessorRef, Path, TaskLog], Path]


def run_task(request: TaskRequest) -> TaskResult:
    """Run one task (or find its output already written) and report how it went; see the module's description."""
    started = time.monotonic()
    worker = worker_address()
    log = TaskLog(Path(request.log_path))
    log.begin(request, worker)
    result = partial(TaskResult, request.campaign_id, request.ordinal, request.run, worker)
    try:
        output = _produce(request, log)
    except ProcessorFailure as failure:
        seconds = time.monotonic() - started
        log.failure(failure.message, failure.traceback, f"failed after {seconds:.2f} s, retryable: {failure.retryable}")
        return result(seconds, error=failure.message, traceback=failure.traceback or None, retryable=failure.retryable)
    except BaseException as error:
        log.failure(f"platform error: {error!r}", traceback.format_exc(), "the attempt failed in the platform")
        raise
    seconds = time.monotonic() - started
    log.line(f"done in {seconds:.2f} s: {output.path} ({output.size} bytes{', reused' if output.reused else ''})")
    return result(seconds, outputs=(output,))


def _produce(request: TaskRequest, log: TaskLog) -> TaskOutput:
    final = output_path(request.output_dir, request.key, request.output_format)
    if final.exists():
        log.line(f"output already written by an earlier run: {final}")
        return TaskOutput(str(final), output_size(final), reused=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    processor = _processor(request)
    temporary = RUNNERS[processor.kind](request, processor, final, log)
    try:
        if request.output_format == "zarr":
            temporary = _as_zarr(temporary, final)
        published = publish(temporary, final)
    finally:
        discard(temporary)
    if not published:
        log.line("a concurrent run of this task published the output first; this run's copy was dropped")
    return TaskOutput(str(final), output_size(final), reused=not published)


def _as_zarr(netcdf: Path, final: Path) -> Path:
    """The processor's NetCDF output converted to a temporary Zarr store (the NetCDF copy removed)."""
    try:
        with _netcdf_library:
            return write_zarr_store(netcdf, final)
    except Exception as error:
        raise ProcessorFailure(
            f"cannot write the output as Zarr: {type(error).__name__}: {error}", retryable=True
        ) from None
    finally:
        netcdf.unlink(missing_ok=True)


def _processor(request: TaskRequest) -> ProcessorRef:
    try:
        return parse_processor(request.processor)
    except Exception as error:
        raise ProcessorFailure(f"invalid processor {request.processor!r}: {error}", retryable=False) from None


def _run_builtin(request: TaskRequest, processor: ProcessorRef, final: Path, log: TaskLog) -> Path:
    """A built-in processor, in this process: inputs opened lazily, the result computed while it is written."""
    function = _builtin(processor)
    temporary = temporary_path(final)
    log.line(f"running {processor.document()} in the worker process")
    try:
        with _netcdf_library:
            _compute_builtin(request, processor, function, temporary)
    except Exception as error:
        temporary.unlink(missing_ok=True)
        raise _failure(error) from None
    return temporary


def _compute_builtin(request: TaskRequest, processor: ProcessorRef, function: Callable[..., Any], path: Path) -> None:
    datasets = open_inputs(request.inputs)
    try:
        result = function(datasets, dict(request.parameters))
        if not isinstance(result, xr.Dataset):
            message = f"{processor.function} returned {type(result).__name__}, not an xarray.Dataset"
            raise ProcessorFailure(message, retryable=False)
        write_netcdf(result, path, provenance(request))
    finally:
        close_all(datasets.values())


def _builtin(processor: ProcessorRef) -> Callable[..., Any]:
    try:
        module = importlib.import_module(processor.target)
    except ImportError:
        raise ProcessorFailure(f"there is no built-in processor module {processor.target}", retryable=False) from None
    function = getattr(module, processor.function, None)
    if not callable(function) or processor.function not in getattr(module, "__all__", ()):
        known = ", ".join(getattr(module, "__all__", ()))
        message = f"{processor.target} has no processor {processor.function!r}; the built-in processors are {known}"
        raise ProcessorFailure(message, retryable=False)
    return function  # type: ignore[no-any-return]


def _failure(error: Exception) -> ProcessorFailure:
    """A processor's exception as the task's failure: bad parameters or input cannot be fixed by a retry."""
    if isinstance(error, ProcessorFailure):
        return error
    if isinstance(error, InvalidInput):
        return ProcessorFailure(error.detail, traceback.format_exc(), retryable=False)
    return ProcessorFailure(f"{type(error).__name__}: {error}", traceback.format_exc(), retryable=True)


def _run_script(request: TaskRequest, processor: ProcessorRef, final: Path, log: TaskLog) -> Path:
    """A workspace script's function, in this process's sandboxed worker for the campaign."""
    script = _workspace_file(request, processor.target)
    with _sandbox_for(request) as sandbox:
        staged = sandbox.staging / f"{request.key}.nc"
        scratch = sandbox.staging / f"{request.key}.scratch"
        arguments = {"script": str(script), "function": processor.function, "inputs": request.inputs}
        arguments |= {"parameters": request.parameters, "output": str(staged), "scratch": str(scratch)}
        try:
            if sandbox.worker.pid is None:
                sandbox.worker.run(SHIM, "prepare", {}, timeout=PREPARE_TIMEOUT)
            log.line(f"running {processor.document()} in sandboxed worker {sandbox.worker.pid}")
            call = sandbox.worker.run(SHIM, "run_processor", arguments | {"provenance": provenance(request)})
            log.block("processor output", call.log)
            log.line(f"the sandboxed call took {call.seconds:.2f} s")
            if "error" in call.value:
                reply = call.value
                raise ProcessorFailure(reply["error"], reply["traceback"], retryable=reply["retryable"])
            return _adopt(staged, final)
        except SandboxError as error:  # timed out or crashed (user errors come back as replies)
            log.block("processor output", error.log)
            message = error.detail.replace(f"{SHIM}:run_processor", f"{processor.target}:{processor.function}")
            raise ProcessorFailure(message, error.traceback, retryable=True) from None
        finally:
            staged.unlink(missing_ok=True)
            shutil.rmtree(scratch, ignore_errors=True)


def _run_command(request: TaskRequest, processor: ProcessorRef, final: Path, log: TaskLog) -> Path:
    """A command line, in a sandboxed process of its own; `shim.main` runs it and checks the file it wrote."""
    staging = new_staging(request.output_dir)
    scratch = Path(request.scratch_dir)
    created = not scratch.exists()
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        staged, report, task = staging / f"{request.key}.nc", staging / "report.json", staging / "task.json"
        argv = _command_argv(request, processor, staged)
        description = {"argv": argv, "output": str(staged), "report": str(report), "provenance": provenance(request)}
        task.write_text(json.dumps(description))
        mounts = Mounts(readonly=(*_readable(request), SHIM), writable=(staging, scratch))
        log.line(f"running command {json.dumps(argv)}")
        try:
            completed = run_script(SHIM, [str(task)], mounts, _limits(request), workdir=scratch)
        except SandboxError as error:
            log.block("command output", error.log)
            raise ProcessorFailure(error.detail.replace(str(SHIM), argv[0]), retryable=True) from None
        log.block("command output", _text(completed.stdout) + _text(completed.stderr))
        _check_report(_read_report(report), completed, argv[0])
        return _adopt(staged, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(scratch, ignore_errors=True)


def _command_argv(request: TaskRequest, processor: ProcessorRef, output: Path) -> list[str]:
    """The task's argv: placeholders filled, a workspace program (`./PATH`) given by its full path."""
    try:
        argv = render_command(processor, request.inputs, str(output), request.parameters)
    except InvalidInput as error:
        raise ProcessorFailure(error.detail, retryable=False) from None
    if argv[0].startswith("./"):
        argv[0] = str(_workspace_file(request, argv[0].removeprefix("./")))
    return argv


def _check_report(reply: dict[str, Any] | None, completed: subprocess.CompletedProcess[bytes], program: str) -> None:
    """Raise the command's failure, as its report (or, without one, its exit status) tells it."""
    tail = _text(completed.stderr)[-ERROR_TAIL:].strip()
    if reply is None:
        message = f"the sandbox running {program} exited with status {completed.returncode} without a report"
        raise ProcessorFailure(f"{message}: {tail}" if tail else message, retryable=True)
    if "error" in reply:
        message = str(reply["error"])
        raise ProcessorFailure(f"{message}: {tail}" if tail else message, retryable=bool(reply.get("retryable")))


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        data = file.read(REPORT_LIMIT)
    try:
        reply = json.loads(data)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def _adopt(staged: Path, final: Path) -> Path:
    try:
        return adopt(staged, final)
    except InvalidInput as error:
        raise ProcessorFailure(error.detail, retryable=False) from None


def _workspace_file(request: TaskRequest, relative: str) -> Path:
    """A file of the submitter's workspace, which must exist there (not through a link pointing out of it)."""
    workspace = Path(request.workspace).resolve()
    path = (workspace / relative).resolve()
    if workspace not in path.parents or not path.is_file():
        raise ProcessorFailure(f"{relative} is not a file of your workspace {workspace}; upload it", retryable=False)
    return path


def _readable(request: TaskRequest) -> tuple[Path, ...]:
    """What the sandbox reads: the workspace and the local archive roots of the inputs (URLs are not mounted)."""
    roots = (Path(root) for root in request.readonly_roots if "://" not in root)
    return (Path(request.workspace), *roots)


def _limits(request: TaskRequest) -> Limits:
    return Limits(**{name: value for name, value in asdict(request.limits).items() if value is not None})


@dataclass
class _Sandbox:
    """A sandboxed worker kept for a campaign's tasks, and the staging directory it writes in."""

    key: tuple[Any, ...]
    worker: SandboxedWorker
    staging: Path

    def close(self) -> None:
        self.worker.close()
        shutil.rmtree(self.staging, ignore_errors=True)


_idle: list[_Sandbox] = []  # most recently used last
_busy: dict[tuple[int, int], _Sandbox] = {}  # (campaign, task) -> the sandbox running it
_idle_lock = threading.Lock()


@contextmanager
def _sandbox_for(request: TaskRequest) -> Iterator[_Sandbox]:
    """A sandboxed worker for this task's campaign and configuration: an idle one if any, else a new one.

    Tasks running at the same time in this process get different workers; each goes back to the idle ones after.
    """
    limits = _limits(request)
    key = (request.campaign_id, request.owner, request.workspace, request.output_dir, request.readonly_roots, limits)
    with _idle_lock:
        found = next((sandbox for sandbox in reversed(_idle) if sandbox.key == key), None)
        if found is not None:
            _idle.remove(found)
    found = found or _new_sandbox(request, key, limits)
    task = (request.campaign_id, request.ordinal)
    with _idle_lock:
        _busy[task] = found
    try:
        yield found
    finally:
        with _idle_lock:
            _busy.pop(task, None)
            _idle.append(found)
            evicted = _idle[:-IDLE_SANDBOXES]
            del _idle[:-IDLE_SANDBOXES]
        for sandbox in evicted:
            sandbox.close()


def _new_sandbox(request: TaskRequest, key: tuple[Any, ...], limits: Limits) -> _Sandbox:
    """A sandboxed worker (started on its first call) that sees the inputs and writes in a new staging directory."""
    staging = new_staging(request.output_dir)
    try:
        mounts = Mounts(readonly=(*_readable(request), SHIM), writable=(staging,))
        return _Sandbox(key, SandboxedWorker(mounts, limits, workdir=staging), staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def close_sandboxes(campaign_id: int | None = None) -> int:
    """Stop this process's idle sandboxed workers (of one campaign, or all); returns how many were stopped.

    For the engine, when a campaign ends: `client.run(close_sandboxes, campaign_id)` on every Dask worker.
    """
    with _idle_lock:
        chosen = [sandbox for sandbox in _idle if campaign_id is None or sandbox.key[0] == campaign_id]
        _idle[:] = [sandbox for sandbox in _idle if sandbox not in chosen]
    for sandbox in chosen:
        sandbox.close()
    return len(chosen)


def interrupt_tasks(campaign_id: int, tasks: Sequence[int]) -> int:
    """Kill the sandboxed workers running these tasks of a campaign in this process; returns how many were running.

    For the engine, when tasks are cancelled: `client.run(interrupt_tasks, ...)` on every Dask worker. The killed
    tasks end as crashed, a report the engine drops. Built-in processors run in the worker's own thread, and commands
    in one-shot sandboxes: those finish (or time out) on their own.
    """
    with _idle_lock:
        running = [_busy[(campaign_id, task)] for task in tasks if (campaign_id, task) in _busy]
    return sum(sandbox.worker.interrupt() for sandbox in running)


atexit.register(close_sandboxes)  # idle sandboxes stop with the process, their staging directories removed

RUNNERS: dict[str, Runner] = {"builtin": _run_builtin, "script": _run_script, "command": _run_command}


def worker_address() -> str:
    """The Dask worker's address when running in one, else host:pid."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
