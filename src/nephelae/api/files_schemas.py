"""Wire schemas of `/api/v1/files` (a workspace's files) and `/api/v1/runs` (sandboxed script runs)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from nephelae.workspaces import Entry, RunResult
from nephelae.workspaces.runs import MAX_ARGS


class FileEntry(BaseModel):
    """One file or directory of your workspace."""

    path: str = Field(description="Path relative to the top of your workspace, `/`-separated.")
    size: int = Field(description="Size in bytes (0 for a directory).")
    mtime: dt.datetime = Field(description="Last modification, UTC.")
    is_dir: bool = Field(description="Whether it is a directory.")

    @classmethod
    def of(cls, entry: Entry) -> FileEntry:
        return cls(path=entry.path, size=entry.size, mtime=entry.mtime, is_dir=entry.is_dir)


class RunRequest(BaseModel):
    """A script of your workspace to run in the sandbox, as `python SCRIPT ARGS...` in your workspace."""

    script: str = Field(min_length=1, max_length=1024, description="Path of the script in your workspace.")
    args: list[str] = Field(default_factory=list, max_length=MAX_ARGS, description="Its command-line arguments.")

    model_config = {"json_schema_extra": {"examples": [{"script": "mean_sst.py", "args": ["2020-01-01"]}]}}


class RunOutcome(BaseModel):
    """How the run ended. A non-zero `exit_status` is the script's own failure, not an error of the request."""

    exit_status: int = Field(description="The script's exit status; 128 + N when killed by signal N.")
    stdout: str = Field(description="The end of what it printed on standard output (its last MiB).")
    stderr: str = Field(description="The end of what it printed on standard error (tracebacks).")
    duration: float = Field(description="Wall-clock seconds.")

    @classmethod
    def of(cls, result: RunResult) -> RunOutcome:
        return cls(exit_status=result.exit_status, stdout=result.stdout, stderr=result.stderr, duration=result.duration)
