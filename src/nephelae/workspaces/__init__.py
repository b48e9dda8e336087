"""Users' workspaces: their files (checked paths, atomic uploads within a quota) and their sandboxed script runs.

The workspace of user U is `NEPHELAE_HOME/workspaces/U/`. Every path from outside goes through `parse_path` and
`Workspace` (`nephelae.workspaces.paths`), which never leave it, even through symbolic links that scripts plant.
"""

from nephelae.workspaces.files import (
    Entry,
    OpenedFile,
    Upload,
    UploadLimits,
    begin_upload,
    delete_path,
    list_entries,
    open_file,
    usage_bytes,
)
from nephelae.workspaces.paths import Workspace, parse_path
from nephelae.workspaces.runs import RunResult, readable_roots, run_limits, run_workspace_script, workspace_lock
from nephelae.workspaces.service import record_upload, remove_file, upload_limits, workspace_of

__all__ = [
    "Entry",
    "OpenedFile",
    "RunResult",
    "Upload",
    "UploadLimits",
    "Workspace",
    "begin_upload",
    "delete_path",
    "list_entries",
    "open_file",
    "parse_path",
    "readable_roots",
    "record_upload",
    "remove_file",
    "run_limits",
    "run_workspace_script",
    "upload_limits",
    "usage_bytes",
    "workspace_lock",
    "workspace_of",
]
