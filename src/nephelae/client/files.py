"""`Client.files`: your workspace on the platform (`/api/v1/files/...`), paths confined to it, and script runs.

Uploads are streamed from the local file and downloads streamed to a hidden temporary file renamed into place, so
neither holds a whole file in memory and an interrupted download leaves no partial file behind.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from nephelae.client.transport import Transport, response_error
from nephelae.errors import InvalidInput, ServiceUnavailable

TRANSFER_TIMEOUT = httpx.Timeout(60.0, read=600.0)  # a large file is slow to write on the server's disk too
RUN_TIMEOUT = httpx.Timeout(30.0, read=None)  # the server ends the run at its own limit, then answers


@dataclass(frozen=True)
class RemoteFile:
    """A file or directory of your workspace: `path` relative to its top, `size` in bytes, `mtime` in UTC."""

    path: str
    size: int
    mtime: dt.datetime
    is_dir: bool

    @classmethod
    def from_wire(cls, item: dict[str, Any]) -> RemoteFile:
        mtime = dt.datetime.fromisoformat(str(item["mtime"]).replace("Z", "+00:00"))
        return cls(path=str(item["path"]), size=int(item["size"]), mtime=mtime, is_dir=bool(item["is_dir"]))


@dataclass(frozen=True)
class RunOutcome:
    """How a script run ended: its exit status, the end of its stdout and stderr, and its wall time in seconds."""

    exit_status: int
    stdout: str
    stderr: str
    duration: float


class Files:
    """Put, get, list and remove the files of your workspace, and run its scripts; reached as `Client.files`."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def ls(self, path: str = "", recursive: bool = False) -> list[RemoteFile]:
        """The entries of a directory of your workspace (its top by default), sorted by path."""
        params = {"path": path.rstrip("/"), "recursive": "true" if recursive else "false"}
        return [RemoteFile.from_wire(item) for item in self._transport.get("/files", params)]

    def put(self, local: str | os.PathLike[str], remote: str, *, executable: bool | None = None) -> RemoteFile:
        """Upload the local file to `remote` in your workspace (replacing it), streamed.

        `executable` defaults to whether the local file is executable (for a campaign's command).
        """
        source = Path(local)
        if not source.is_file():
            raise InvalidInput(f"{source} is not a file on this machine")
        if executable is None:
            executable = bool(source.stat().st_mode & stat.S_IXUSR)
        params = {"executable": "true"} if executable else None
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(source.stat().st_size)}
        with source.open("rb") as stream:
            # a streamed body cannot be sent again: one attempt
            response = self._transport.once(
                "PUT", _url(remote), params=params, content=stream, headers=headers, timeout=TRANSFER_TIMEOUT
            )
        return RemoteFile.from_wire(response.json())

    def get(self, remote: str, local: str | os.PathLike[str]) -> Path:
        """Download `remote` from your workspace to the local path (replaced only once complete); the local path."""
        target = Path(local)
        request = self._transport.http.build_request("GET", _url(remote), timeout=TRANSFER_TIMEOUT)
        try:
            response = self._transport.http.send(request, stream=True)
        except httpx.TransportError as error:
            raise ServiceUnavailable(
                f"no answer from {self._transport.url} ({error or type(error).__name__})"
            ) from None
        try:
            if not response.is_success:
                response.read()
                raise response_error(response)
            _save(response, target)
        finally:
            response.close()
        return target

    def delete(self, remote: str, *, recursive: bool = False) -> None:
        """Remove a file (or an empty directory; a whole one with `recursive`) from your workspace."""
        self._transport.request("DELETE", _url(remote), params={"recursive": "true"} if recursive else None)

    def run(self, script: str, args: list[str] | None = None) -> RunOutcome:
        """Run `python SCRIPT ARGS...` in your workspace, sandboxed next to the archive; waits until it ends.

        A script that fails still returns (see `exit_status`); one killed by its time limit raises SandboxTimeout.
        """
        body = {"script": script, "args": list(args or [])}
        hint = "; the script may have run"
        item = self._transport.once("POST", "/runs", json=body, timeout=RUN_TIMEOUT, hint=hint).json()
        return RunOutcome(int(item["exit_status"]), str(item["stdout"]), str(item["stderr"]), float(item["duration"]))


def _url(remote: str) -> str:
    if not remote:
        raise InvalidInput("name a file of your workspace, e.g. `results/sst.nc`")
    # `.` and `..` are sent encoded: the URL is not normalised on the way, and the server refuses them by name
    segments = (
        quote(part, safe="") if part not in (".", "..") else part.replace(".", "%2E") for part in remote.split("/")
    )
    return "/files/" + "/".join(segments)


def _save(response: httpx.Response, target: Path) -> None:
    """Write the body next to `target` under a temporary name, then rename it into place."""
    directory = target.parent if str(target.parent) else Path()
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(handle, "wb") as output:
            for chunk in response.iter_bytes():
                output.write(chunk)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
