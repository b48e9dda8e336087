"""`/api/v1/files`: the caller's workspace (list, download, upload, delete); `/api/v1/runs`: run a script of it.

Each caller reaches only their own workspace, `NEPHELAE_HOME/workspaces/<username>/`; every path goes through the
door of `nephelae.workspaces`. Uploads are streamed to a temporary file within the size limit and the quota (413
beyond, checked on Content-Length first and while reading) and renamed into place when complete; downloads are
streamed. A run is synchronous: the answer comes when the script ends or its time limit kills it (504).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from nephelae.api.auth import Authenticated
from nephelae.api.deps import SessionDep, SettingsDep
from nephelae.api.files_schemas import FileEntry, RunOutcome, RunRequest
from nephelae.errors import InvalidInput
from nephelae.workspaces import (
    Upload,
    begin_upload,
    list_entries,
    open_file,
    record_upload,
    remove_file,
    run_workspace_script,
    upload_limits,
    workspace_of,
)

router = APIRouter(prefix="/files", tags=["workspace"])
runs_router = APIRouter(prefix="/runs", tags=["workspace"])

WRITE_BATCH = 1 << 20  # bytes gathered from the socket before one write to disk (in a worker thread)
DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."}
}
FilePath = Annotated[str, Path(description="A path relative to the top of your workspace, `/`-separated.")]


@router.get("", summary="List your files")
def list_files(
    principal: Authenticated,
    settings: SettingsDep,
    path: Annotated[str, Query(max_length=1024, description="A directory of your workspace; its top when empty.")] = "",
    recursive: Annotated[bool, Query(description="Include the subdirectories' contents.")] = False,
) -> list[FileEntry]:
    """The files and directories under `path`, sorted by path (a file lists as itself)."""
    entries = list_entries(workspace_of(settings, principal), path, recursive=recursive)
    return [FileEntry.of(entry) for entry in entries]


@router.get("/{path:path}", summary="Download a file", response_class=StreamingResponse, responses=DOWNLOAD)
def download_file(path: FilePath, principal: Authenticated, settings: SettingsDep) -> StreamingResponse:
    """The bytes of a file of your workspace, streamed; a directory is a 400 (list it instead)."""
    opened = open_file(workspace_of(settings, principal), path)
    name = quote(path.rsplit("/", 1)[-1])
    headers = {"Content-Length": str(opened.entry.size), "Content-Disposition": f"attachment; filename*=UTF-8''{name}"}
    return StreamingResponse(opened.chunks(), media_type="application/octet-stream", headers=headers)


@router.put("/{path:path}", summary="Upload a file")
async def upload_file(
    path: FilePath,
    request: Request,
    principal: Authenticated,
    settings: SettingsDep,
    session: SessionDep,
    executable: Annotated[bool, Query(description="Make the file executable (a program for campaigns).")] = False,
) -> FileEntry:
    """Write the raw request body to `path` (directories made as needed), replacing any file there, atomically."""
    start = partial(begin_upload, declared_size=_content_length(request), executable=executable)
    upload = await run_in_threadpool(start, workspace_of(settings, principal), path, upload_limits(settings))
    try:
        await _receive(request, upload)
        entry = await run_in_threadpool(upload.commit)
    finally:
        upload.abort()  # nothing left behind by a failed or interrupted upload; a no-op once committed
    await run_in_threadpool(record_upload, session, principal, entry)
    return FileEntry.of(entry)


@router.delete("/{path:path}", summary="Delete a file", status_code=204)
def delete_file(
    path: FilePath,
    principal: Authenticated,
    settings: SettingsDep,
    session: SessionDep,
    recursive: Annotated[bool, Query(description="Remove a directory with its contents.")] = False,
) -> Response:
    """Remove a file, a link or an empty directory (a whole directory with `recursive=true`)."""
    remove_file(session, settings, principal, path, recursive=recursive)
    return Response(status_code=204)


@runs_router.post("", summary="Run a workspace script")
def run(body: RunRequest, principal: Authenticated, settings: SettingsDep, session: SessionDep) -> RunOutcome:
    """Run `python SCRIPT ARGS...` in the sandbox, in your workspace; answers when it ends (504 past its limit)."""
    return RunOutcome.of(run_workspace_script(session, settings, principal, body.script, body.args))


async def _receive(request: Request, upload: Upload) -> None:
    batch = bytearray()
    try:
        async for chunk in request.stream():
            batch += chunk
            if len(batch) >= WRITE_BATCH:
                await run_in_threadpool(upload.write, bytes(batch))
                batch.clear()
    except ClientDisconnect:
        raise InvalidInput(f"the upload of {upload.relative} was interrupted; nothing was written") from None
    await run_in_threadpool(upload.write, bytes(batch))


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInput(f"Content-Length {value[:20]!r} is not a number of bytes")
    return int(value)
