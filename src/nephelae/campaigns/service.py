"""Campaigns as the API and the CLI see them: submit, list, inspect, read logs, cancel, retry.

`submit_campaign` finishes checking a spec against the database and the submitter's workspace (the spec module
checked everything else), fixes the processor's identity (with its version or file hash: it is part of every task's
key, so a changed script never reuses an older output), records the campaign `queued` and registers its output
dataset. From there the engine (`campaigns.engine`) runs it. Cancel and retry are requests left on the campaign row
for the engine, which hands them to the campaign's state machine on its next turn (within a second).

A campaign is visible to its owner and to admins only; to anyone else it does not exist (404, not 403).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from importlib import import_module
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nephelae import __version__
from nephelae.accounts import Principal
from nephelae.campaigns.spec import CampaignSpec, ProcessorRef, check_output_owner
from nephelae.campaigns.state import FINAL, PUBLIC
from nephelae.catalog.datasets import add_dataset, readable_dataset
from nephelae.catalog.search import search_granules
from nephelae.config import Settings
from nephelae.db.models import Campaign, CampaignTask, Dataset
from nephelae.errors import Conflict, InvalidInput, NotFound, PermissionDenied

MAX_TASK_PAGE = 10_000
MAX_CAMPAIGN_PAGE = 1000
OUTPUT_PATTERNS = {"netcdf": "**/*.nc", "zarr": "**/*.zarr"}


def submit_campaign(session: Session, settings: Settings, principal: Principal, spec: CampaignSpec) -> Campaign:
    """Check `spec` against the catalog and the workspace, record the campaign (queued), register its output."""
    _check_inputs(session, principal, spec)
    identity = processor_identity(settings, principal.username, spec.processor)
    output = _output_dataset(session, settings, principal, spec)
    campaign = Campaign(
        name=spec.name,
        owner=principal.username,
        spec=spec.document(),
        processor_identity=identity,
        output_dataset=spec.output.dataset,
        status="queued",
        follow=spec.follow,
        retries=spec.retries,
    )
    session.add(campaign)
    session.flush()
    campaigns = [*output.provenance.get("campaigns", []), campaign.id]  # a rerun adds to the same dataset
    provenance = {"campaign": campaign.id, "campaigns": campaigns, "spec": spec.document(), "processor": identity}
    output.provenance = provenance
    session.commit()
    return campaign


def _output_dataset(session: Session, settings: Settings, principal: Principal, spec: CampaignSpec) -> Dataset:
    """The output dataset: the submitter's already, or registered now."""
    output = session.get(Dataset, spec.output.dataset)
    check_output_owner(
        spec.output.dataset,
        existing_owner=output.owner if output else None,
        exists=output is not None,
        submitter=principal.username,
    )
    return output or _register_output(session, settings, principal, spec)


def _check_inputs(session: Session, principal: Principal, spec: CampaignSpec) -> None:
    """Every input dataset exists and is readable by the submitter; the primary selection is not empty."""
    for alias, item in spec.inputs.items():
        try:
            readable_dataset(session, principal, item.dataset)
        except (NotFound, PermissionDenied) as error:
            raise type(error)(f"input {alias!r}: {error.detail}") from None
    primary = spec.inputs[spec.primary]
    if spec.follow:
        return  # a standing campaign may start before its first granule is indexed
    page = search_granules(session, primary.dataset, bbox=primary.box, interval=primary.interval, limit=1)
    if not page.granules:
        where = f"time {primary.time or 'any'}, bbox {list(primary.bbox) if primary.bbox else 'any'}"
        raise InvalidInput(
            f"input {spec.primary!r}: no readable granule of {primary.dataset} matches ({where}); widen the time or "
            f"the box (see `nephelae search {primary.dataset}`), or set `follow: true` to wait for new granules"
        )


def _register_output(session: Session, settings: Settings, principal: Principal, spec: CampaignSpec) -> Dataset:
    """The campaign's derived dataset: owned by the submitter, readable by their projects."""
    root = (settings.campaigns_dir / spec.output.dataset).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return add_dataset(
        session,
        spec.output.dataset,
        str(root),
        OUTPUT_PATTERNS[spec.output.format],
        title=f"{spec.output.dataset}: derived by campaign {spec.name}",
        description=f"Outputs of campaign {spec.name} by {principal.username} ({spec.processor.document()}).",
        license="proprietary",
        projects=principal.projects,
        owner=principal.username,
        actor=principal.username,
    )


def processor_identity(settings: Settings, username: str, processor: ProcessorRef) -> str:
    """The processor and its version or file hash, after checking that it exists."""
    if processor.kind == "builtin":
        _check_builtin(processor)
        return f"{processor.target}:{processor.function}@nephelae {__version__}"
    workspace = settings.workspaces_dir / username
    if processor.kind == "script":
        script = workspace_file(workspace, PurePosixPath(processor.target), "script")
        return f"{processor.target}:{processor.function}@sha256:{file_sha256(script)}"
    argv = json.dumps(list(processor.argv), ensure_ascii=False)
    relative = processor.workspace_path
    if relative is None:
        return f"command:{argv}"
    program = workspace_file(workspace, relative, "program")
    if not os.access(program, os.X_OK):
        raise InvalidInput(f"program {processor.argv[0]} in your workspace is not executable; run `chmod +x` on it")
    return f"command:{argv}@sha256:{file_sha256(program)}"


def _check_builtin(processor: ProcessorRef) -> None:
    try:
        module = import_module(processor.target)
    except ImportError:
        raise InvalidInput(
            f"unknown built-in processor module {processor.target!r}; the built-ins are in nephelae.processors, "
            "such as nephelae.processors:time_mean"
        ) from None
    if not callable(getattr(module, processor.function, None)):
        raise InvalidInput(
            f"{processor.target} has no processor {processor.function!r}; "
            f"known: {', '.join(_public_functions(module)) or 'none'}"
        )


def _public_functions(module: Any) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == module.__name__
    )


def workspace_file(workspace: Path, relative: PurePosixPath, what: str) -> Path:
    """A regular file of the workspace, symlinks resolved and still inside it; else a clear error."""
    path = workspace.joinpath(*relative.parts)
    home = workspace.resolve()
    if not path.exists() and not path.is_symlink():
        raise InvalidInput(
            f"{what} {relative} is not in your workspace; upload it first with `nephelae files put {relative.name} "
            f"{relative}`"
        )
    resolved = path.resolve()
    if not resolved.is_relative_to(home):
        raise InvalidInput(f"{what} {relative} leads outside your workspace (a symlink?); copy the file in instead")
    if not resolved.is_file():
        raise InvalidInput(f"{what} {relative} in your workspace is not a regular file")
    return resolved


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def list_campaigns(
    session: Session, principal: Principal, *, everyone: bool = False, limit: int = 100
) -> list[Campaign]:
    """The caller's campaigns, newest first; `everyone` (admins only) lists all accounts' campaigns."""
    if everyone and not principal.is_admin:
        raise PermissionDenied("only operators may list the campaigns of every account; drop the --all option")
    query = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
    if not everyone:
        query = query.where(Campaign.owner == principal.username)
    return list(session.scalars(query.limit(max(1, min(limit, MAX_CAMPAIGN_PAGE)))))


def get_campaign(session: Session, principal: Principal, campaign_id: int) -> Campaign:
    """The campaign, if the caller owns it or is an admin; otherwise it does not exist for them."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or (campaign.owner != principal.username and not principal.is_admin):
        raise NotFound(f"no campaign {campaign_id}; `nephelae campaigns list` shows yours")
    return campaign


def list_tasks(
    session: Session,
    principal: Principal,
    campaign_id: int,
    *,
    status: str | None = None,
    limit: int = 1000,
    after: int | None = None,
) -> list[CampaignTask]:
    """The campaign's tasks in order, a page at a time: `after` is the last ordinal of the previous page."""
    get_campaign(session, principal, campaign_id)
    query = select(CampaignTask).where(CampaignTask.campaign_id == campaign_id)
    if status is not None:
        if status not in PUBLIC:
            raise InvalidInput(f"task status {status!r} is not one of {', '.join(dict.fromkeys(PUBLIC))}")
        query = query.where(CampaignTask.status == status)
    if after is not None:
        query = query.where(CampaignTask.ordinal > after)
    limit = max(1, min(limit, MAX_TASK_PAGE))
    return list(session.scalars(query.order_by(CampaignTask.ordinal).limit(limit)))


def get_task(session: Session, principal: Principal, campaign_id: int, ordinal: int) -> CampaignTask:
    get_campaign(session, principal, campaign_id)
    task = session.scalar(
        select(CampaignTask).where(CampaignTask.campaign_id == campaign_id, CampaignTask.ordinal == ordinal)
    )
    if task is None:
        raise NotFound(f"campaign {campaign_id} has no task {ordinal}; tasks are numbered from 0")
    return task


def task_log(session: Session, principal: Principal, campaign_id: int, ordinal: int, *, tail_bytes: int = 65536) -> str:
    """The end of a task's log (at most `tail_bytes`); empty when the task has not written one yet."""
    task = get_task(session, principal, campaign_id, ordinal)
    if not task.log_path:
        return ""
    try:
        with Path(task.log_path).open("rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - max(0, tail_bytes)))
            data = stream.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if len(data) < size and "\n" in text:  # cut mid-line: start at the next whole line
        text = text.split("\n", 1)[1]
    return text


def request_cancel(session: Session, principal: Principal, campaign_id: int) -> Campaign:
    """Ask the engine to cancel the campaign: running tasks are stopped, pending ones never start."""
    campaign = get_campaign(session, principal, campaign_id)
    if campaign.status in FINAL:
        raise Conflict(f"campaign {campaign_id} is already {campaign.status}; there is nothing to cancel")
    campaign.request = "cancel"
    session.commit()
    return campaign


def request_retry(session: Session, principal: Principal, campaign_id: int) -> Campaign:
    """Ask the engine to run the failed tasks again (only those: done outputs are kept)."""
    campaign = get_campaign(session, principal, campaign_id)
    if campaign.status == "cancelled":
        raise Conflict(
            f"campaign {campaign_id} was cancelled; submit its spec again instead (finished outputs are reused)"
        )
    if campaign.failed_count == 0:
        raise Conflict(f"campaign {campaign_id} has no failed task to retry (status {campaign.status})")
    campaign.request = "retry"
    session.commit()
    return campaign


def progress(campaign: Campaign) -> dict[str, Any]:
    """Counts, the fraction finished and timings, as the API and the CLI show them."""
    counts = {
        "pending": campaign.pending_count,
        "running": campaign.running_count,
        "done": campaign.done_count,
        "failed": campaign.failed_count,
        "cancelled": campaign.cancelled_count,
    }
    total = campaign.task_count
    finished = counts["done"] + counts["failed"] + counts["cancelled"]
    now = dt.datetime.now(dt.UTC)
    elapsed = ((campaign.finished_at or now) - campaign.started_at).total_seconds() if campaign.started_at else None
    remaining = None
    if elapsed and counts["done"] and campaign.planning_finished and campaign.status not in FINAL:
        remaining = elapsed / finished * (total - finished) if finished else None
    return {
        "status": campaign.status,
        "tasks": total,
        "planning_finished": campaign.planning_finished,
        "counts": counts,
        "fraction_done": (finished / total if total else (1.0 if campaign.status in FINAL else 0.0)),
        "created_at": campaign.created_at.isoformat(),
        "started_at": campaign.started_at.isoformat() if campaign.started_at else None,
        "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else None,
        "elapsed_seconds": elapsed,
        "remaining_seconds": remaining,
        "request": campaign.request,
        "error": campaign.error,
    }
