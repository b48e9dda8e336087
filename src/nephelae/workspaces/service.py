"""The workspace services the entry points call: whose workspace, its limits, and the audit of what changes it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from nephelae.accounts import Principal, audit
from nephelae.config import Settings
from nephelae.workspaces.files import MIB, Entry, UploadLimits, delete_path
from nephelae.workspaces.paths import Workspace


def workspace_of(settings: Settings, principal: Principal) -> Workspace:
    """The caller's own workspace, `NEPHELAE_HOME/workspaces/<username>/` (created if missing)."""
    return Workspace.of(settings.workspaces_dir, principal.username)


def upload_limits(settings: Settings) -> UploadLimits:
    """The size limit of one upload and the workspace quota, from the settings."""
    quota = settings.workspace_quota_mb
    return UploadLimits(settings.workspace_max_upload_mb * MIB, None if quota is None else quota * MIB)


def record_upload(session: Session, principal: Principal, entry: Entry) -> None:
    """Audit a completed upload (and commit)."""
    audit.record(
        session, "workspace.upload", actor=principal.username, address=principal.address, path=entry.path,
        size=entry.size,
    )  # fmt: skip
    session.commit()


def remove_file(session: Session, settings: Settings, principal: Principal, path: str, *, recursive: bool) -> Entry:
    """Remove a file or directory of the caller's workspace, audited."""
    entry = delete_path(workspace_of(settings, principal), path, recursive=recursive)
    audit.record(
        session, "workspace.delete", actor=principal.username, address=principal.address, path=entry.path,
        is_dir=entry.is_dir,
    )  # fmt: skip
    session.commit()
    return entry
