"""What the engine sends to a Dask worker for one task, and what comes back: plain, picklable values.

The engine (`campaigns.engine`) builds a `TaskRequest` from the database; `campaigns.execute.run_task` runs on a
Dask worker with nothing but the request (no database), and returns a `TaskResult`. A processor's own failure is a
`TaskResult` with `error` set, not an exception, so that its message and traceback reach the task's log; an
exception out of `run_task` means the platform failed (the engine counts it as a failed attempt too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Per-task resources from the spec (None: the platform's default)."""

    memory_mb: int | None = None
    cpu_seconds: int | None = None
    timeout_seconds: int | None = None


@dataclass(frozen=True)
class TaskRequest:
    campaign_id: int
    campaign_name: str
    ordinal: int
    run: int  # the state machine's submission number, reported back with the result
    key: str  # sha256 of (inputs, processor, parameters): the output's name, written once
    owner: str  # the submitting account: whose workspace, whose sandbox
    inputs: dict[str, list[str]]  # alias -> absolute paths of the task's granules, in time order
    processor: str | dict[str, list[str]]  # the spec's processor document (builtin, script or command)
    processor_identity: str  # with its version or file hash, for provenance
    parameters: dict[str, Any]
    output_dir: str  # the output dataset's root: results go to output_dir/<key[:2]>/<key>.nc
    output_format: str  # netcdf | zarr
    workspace: str  # NEPHELAE_HOME/workspaces/<owner>: scripts are read from here (read-only in the sandbox)
    readonly_roots: tuple[str, ...]  # archive roots of the inputs, mounted read-only in the sandbox
    scratch_dir: str  # writable scratch for this task, removed afterwards
    log_path: str  # where the task's log (processor output, errors) is written
    limits: Limits = field(default_factory=Limits)
    provenance: dict[str, Any] = field(default_factory=dict)  # campaign id, spec name, software versions...


@dataclass(frozen=True)
class TaskOutput:
    path: str  # absolute path of the file written (or found already written)
    size: int
    reused: bool  # True when an earlier run had already written this key: nothing was recomputed


@dataclass(frozen=True)
class TaskResult:
    campaign_id: int
    ordinal: int
    run: int
    worker: str
    seconds: float
    outputs: tuple[TaskOutput, ...] = ()
    error: str | None = None  # the processor's message: the task failed
    traceback: str | None = None
    retryable: bool = True  # False for errors a retry cannot fix (e.g. a processor returning the wrong type)
