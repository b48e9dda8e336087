"""The state machine's persistent half: its SQL actions carried out, its state rebuilt, its tasks described.

Every write the engine makes for a campaign goes through `SqlWriter.apply`, inside the transaction that records the
events the actions came from; `restore_state` reads the machine back from those rows after a restart. Task rows keep
their inputs as `{alias: [absolute paths]}` (exactly what a `TaskRequest` carries) and the location of their log.
Outputs that land are registered as granules of the output dataset in the same transaction as the task's success,
from the metadata the worker read (`cluster.run_on_worker`), so the derived dataset grows as the campaign runs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import posixpath
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from nephelae import __version__
from nephelae.campaigns.cluster import DescribedOutput, WorkerReport
from nephelae.campaigns.planning import PlannedTask
from nephelae.campaigns.spec import CampaignSpec, validate_spec
from nephelae.campaigns.state import (
    FINAL,
    Action,
    AddTasks,
    CampaignFinished,
    CampaignState,
    CampaignStatus,
    Resumed,
    TaskFailed,
    TaskStarted,
    TaskStatus,
    TaskSucceeded,
    UpdateCampaign,
    UpdateTask,
    UpdateTasks,
    WorkerLost,
)
from nephelae.campaigns.tasks import Limits, TaskRequest
from nephelae.catalog.datasets import get_dataset, refresh_summary
from nephelae.config import Settings
from nephelae.db.models import Campaign, CampaignTask, Dataset, Granule, utcnow
from nephelae.errors import NotFound

logger = logging.getLogger(__name__)

INSERT_BATCH = 5000
TASK_COLUMNS = ("campaign_id", "ordinal", "key", "label", "inputs", "status", "attempts", "outputs", "log_path")
JSON_COLUMNS = frozenset({"inputs", "outputs"})
TASKS = cast(Table, CampaignTask.__table__)
NO_UPDATE_SYNC = {"synchronize_session": False}  # the engine never holds task rows in its session
FAILED_DETAIL = "every task failed; see the errors with `nephelae campaigns status {id}` and `logs {id} --task N`"


@dataclass(frozen=True)
class CampaignContext:
    """What SQL and the settings say about a campaign, as needed to build the requests of its tasks."""

    campaign_id: int
    name: str
    owner: str
    spec: CampaignSpec
    processor_identity: str
    output_dataset: str
    output_root: str
    input_roots: tuple[str, ...]
    workspace: str
    directory: str  # campaigns_dir/<id>: logs/ and scratch/
    limits: Limits
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, campaign: Campaign, settings: Settings) -> CampaignContext:
        """From the campaign's row and datasets; `NotFound` if its output dataset was removed."""
        spec = validate_spec(campaign.spec, source=f"campaign {campaign.id}")
        output = session.get(Dataset, campaign.output_dataset)
        if output is None:
            raise NotFound(f"the output dataset {campaign.output_dataset!r} of campaign {campaign.id} was removed")
        roots = session.scalars(select(Dataset.root).where(Dataset.id.in_(spec.datasets)))
        resources = spec.resources
        limits = Limits(
            memory_mb=resources.memory_mb or settings.task_memory_mb,
            cpu_seconds=resources.cpu_seconds,
            timeout_seconds=resources.timeout_seconds or settings.task_timeout_seconds,
        )
        provenance = {
            "campaign": campaign.id,
            "campaign_name": campaign.name,
            "owner": campaign.owner,
            "processor": campaign.processor_identity,
            "parameters": spec.parameters,
            "nephelae_version": __version__,
        }
        return cls(
            campaign_id=campaign.id,
            name=campaign.name,
            owner=campaign.owner,
            spec=spec,
            processor_identity=campaign.processor_identity,
            output_dataset=output.id,
            output_root=output.root.removeprefix("file://"),
            input_roots=tuple(sorted({root.removeprefix("file://") for root in roots})),
            workspace=str((settings.workspaces_dir / campaign.owner).resolve()),
            directory=str((settings.campaigns_dir / str(campaign.id)).resolve()),
            limits=limits,
            provenance=provenance,
        )

    def log_path(self, ordinal: int) -> str:
        return f"{self.directory}/logs/{ordinal}.log"

    def request(self, ordinal: int, run: int, key: str, inputs: Mapping[str, list[str]]) -> TaskRequest:
        """The request a worker gets for one submission of a task."""
        return TaskRequest(
            campaign_id=self.campaign_id,
            campaign_name=self.name,
            ordinal=ordinal,
            run=run,
            key=key,
            owner=self.owner,
            inputs=dict(inputs),
            processor=self.spec.processor.document(),
            processor_identity=self.processor_identity,
            parameters=self.spec.parameters,
            output_dir=self.output_root,
            output_format=self.spec.output.format,
            workspace=self.workspace,
            readonly_roots=self.input_roots,
            scratch_dir=posixpath.join(self.directory, "scratch", str(ordinal)),
            log_path=self.log_path(ordinal),
            limits=self.limits,
            provenance=self.provenance,
        )


def restore_state(session: Session, campaign: Campaign, *, max_in_flight: int) -> CampaignState:
    """The campaign's state machine as its rows describe it (send `Resumed` next, if it was running)."""
    rows = session.execute(
        select(CampaignTask.status, CampaignTask.attempts)
        .where(CampaignTask.campaign_id == campaign.id)
        .order_by(CampaignTask.ordinal)
        .execution_options(yield_per=10_000)
    )
    tasks: Iterable[tuple[TaskStatus, int]] = ((row[0], row[1]) for row in rows)  # type: ignore[misc]
    return CampaignState.restore(
        status=campaign.status,  # type: ignore[arg-type]  # written by the state machine only
        tasks=tasks,
        retries=campaign.retries,
        max_in_flight=max_in_flight,
        follow=campaign.follow,
        planning_finished=campaign.planning_finished,
    )


class SqlWriter:
    """Carries out the SQL actions of one campaign in the caller's transaction."""

    def __init__(self, session: Session, campaign: Campaign, context: CampaignContext) -> None:
        self.session = session
        self.campaign = campaign
        self.context = context
        self.planned: dict[int, PlannedTask] = {}  # planned tasks waiting for their AddTasks
        self.reports: dict[tuple[int, int], WorkerReport] = {}  # (ordinal, run) -> what the worker sent back
        self.finished: CampaignStatus | None = None
        self.registered = 0  # output granules added to the catalog

    def apply(self, action: Action) -> None:
        """Carry out one action if it is SQL (the others are the engine's)."""
        match action:
            case AddTasks(first, count):
                self._add(first, count)
            case UpdateTask():
                self._update_task(action)
            case UpdateTasks(where, status, reset):
                self._update_tasks(where, status, reset)
            case UpdateCampaign(status, planning_finished):
                self._update_campaign(status, planning_finished)
            case CampaignFinished(status):
                self.finished = status
                if status == "failed":
                    self.campaign.error = FAILED_DETAIL.format(id=self.campaign.id)

    def write_counts(self, state: CampaignState) -> None:
        """The campaign's summary columns, from the state machine."""
        counts = state.counts()
        campaign = self.campaign
        campaign.task_count = state.total
        campaign.pending_count, campaign.running_count = counts["pending"], counts["running"]
        campaign.done_count, campaign.failed_count = counts["done"], counts["failed"]
        campaign.cancelled_count = counts["cancelled"]

    def _add(self, first: int, count: int) -> None:
        """Insert planned task rows: PostgreSQL's COPY, else Core's executemany (the ORM's bulk path costs more)."""
        campaign_id, log_path = self.campaign.id, self.context.log_path
        rows: list[tuple[Any, ...]] = []
        for ordinal in range(first, first + count):
            task = self.planned.pop(ordinal)
            inputs = {alias: [granule.path for granule in granules] for alias, granules in task.inputs.items()}
            rows.append((campaign_id, ordinal, task.key, task.label, inputs, "pending", 0, [], log_path(ordinal)))
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            _copy_tasks(connection, rows)
            return
        for start in range(0, len(rows), INSERT_BATCH):
            batch = [dict(zip(TASK_COLUMNS, row, strict=True)) for row in rows[start : start + INSERT_BATCH]]
            connection.execute(insert(TASKS), batch)

    def _update_task(self, action: UpdateTask) -> None:
        values: dict[str, Any] = {"status": action.status, "attempts": action.attempts}
        match action.cause:
            case TaskStarted(worker=worker, at=at):
                values |= {"worker": worker, "started_at": at or utcnow(), "finished_at": None}
            case TaskSucceeded(task, run, at=at):
                values |= {"finished_at": at or utcnow(), "error": None, "traceback": None}
                values |= self._reported(self.reports.get((task, run)), register=True)
            case TaskFailed(task, run, error=error, traceback=traceback, at=at):
                values |= {"finished_at": at or utcnow(), "error": error, "traceback": traceback or None}
                values |= self._reported(self.reports.get((task, run)), register=False)
            case WorkerLost():
                values |= {"finished_at": utcnow(), "error": action.error, "traceback": None}
            case Resumed():
                values |= {"started_at": None, "worker": None}
        self._tasks(CampaignTask.ordinal == action.task).values(**values)

    def _reported(self, report: WorkerReport | None, *, register: bool) -> dict[str, Any]:
        """What the worker said of a finished run: where and how long it ran, its outputs (then catalogued)."""
        if report is None:
            return {}
        result = report.result
        started = literal(utcnow() - dt.timedelta(seconds=result.seconds), CampaignTask.started_at.type)
        values: dict[str, Any] = {"worker": result.worker}
        values["started_at"] = func.coalesce(CampaignTask.started_at, started)  # the start report, if it came
        if register:
            outputs = result.outputs
            values["outputs"] = [{"path": item.path, "size": item.size, "reused": item.reused} for item in outputs]
            self.registered += register_outputs(
                self.session, self.context.output_dataset, self.context.output_root, report.outputs
            )
        return values

    def _update_tasks(self, where: tuple[TaskStatus, ...], status: TaskStatus, reset: bool) -> None:
        values: dict[str, Any] = {"status": status}
        if reset:
            values |= {"attempts": 0, "error": None, "traceback": None, "finished_at": None}
        if status == "cancelled":
            values["finished_at"] = utcnow()
        self._tasks(CampaignTask.status.in_(where)).values(**values)

    def _tasks(self, condition: Any) -> _Update:
        return _Update(self.session, self.campaign.id, condition)

    def _update_campaign(self, status: CampaignStatus, planning_finished: bool) -> None:
        campaign = self.campaign
        campaign.status, campaign.planning_finished = status, planning_finished
        if status == "running" and campaign.started_at is None:
            campaign.started_at = utcnow()
        if status in FINAL:
            campaign.finished_at = utcnow()
        else:
            campaign.finished_at, campaign.error = None, None


@dataclass(frozen=True)
class _Update:
    """`UPDATE campaign_tasks SET ... WHERE campaign_id = :id AND condition`."""

    session: Session
    campaign_id: int
    condition: Any

    def values(self, **values: Any) -> None:
        statement = update(CampaignTask).where(CampaignTask.campaign_id == self.campaign_id, self.condition)
        self.session.execute(statement.values(**values), execution_options=NO_UPDATE_SYNC)


def register_outputs(session: Session, dataset_id: str, root: str, outputs: Iterable[DescribedOutput]) -> int:
    """Add the outputs not yet catalogued as granules of the output dataset; how many were added."""
    relative = {posixpath.relpath(item.path, root): item for item in outputs if _inside(item.path, root)}
    if not relative:
        return 0
    known = set(
        session.scalars(select(Granule.path).where(Granule.dataset_id == dataset_id, Granule.path.in_(relative)))
    )
    rows = [_granule_row(dataset_id, path, item) for path, item in relative.items() if path not in known]
    if rows:
        session.execute(insert(Granule), rows)
    return len(rows)


def _inside(path: str, root: str) -> bool:
    return posixpath.commonpath([path, root]) == root.rstrip("/") if path.startswith("/") else False


def _granule_row(dataset_id: str, path: str, output: DescribedOutput) -> dict[str, Any]:
    metadata = output.metadata
    row: dict[str, Any] = {
        "dataset_id": dataset_id,
        "path": path,
        "size": output.size,
        "mtime_ns": output.mtime_ns,
        "status": "ok" if metadata is not None else "unreadable",
        "reason": output.reason,
        "indexed_at": utcnow(),
        "variables": [variable.as_dict() for variable in metadata.variables] if metadata else [],
        "attributes": metadata.attributes if metadata else {},
    }
    for name in ("time_start", "time_end", "west", "south", "east", "north", "footprint"):
        row[name] = getattr(metadata, name, None)
    return row


def task_requests(session: Session, context: CampaignContext, runs: Mapping[int, int]) -> dict[int, TaskRequest]:
    """The request of each task to submit (task -> run), from its row."""
    if not runs:
        return {}
    rows = session.execute(
        select(CampaignTask.ordinal, CampaignTask.key, CampaignTask.inputs).where(
            CampaignTask.campaign_id == context.campaign_id, CampaignTask.ordinal.in_(list(runs))
        )
    )
    return {ordinal: context.request(ordinal, runs[ordinal], key, inputs) for ordinal, key, inputs in rows}


def clear_request(session: Session, campaign_id: int, request: str) -> None:
    """The user's request is handled: cleared, unless they made another one meanwhile."""
    seen = (Campaign.id == campaign_id, Campaign.request == request)
    session.execute(update(Campaign).where(*seen).values(request=None), execution_options=NO_UPDATE_SYNC)


def fail_campaign(session: Session, campaign_id: int, detail: str) -> None:
    """A campaign that cannot run at all (its spec or datasets are gone): failed with the reason, tasks cancelled."""
    unfinished = (CampaignTask.campaign_id == campaign_id, CampaignTask.status.in_(("pending", "running")))
    session.execute(update(CampaignTask).where(*unfinished).values(status="cancelled", finished_at=utcnow()))
    values = {"status": "failed", "error": detail, "finished_at": utcnow(), "request": None}
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(**values))


def unknown_tasks(session: Session, campaign_id: int, tasks: Iterable[PlannedTask]) -> list[PlannedTask]:
    """The tasks whose key the campaign has not planned yet (each key once)."""
    fresh: dict[str, PlannedTask] = {}
    for task in tasks:
        fresh.setdefault(task.key, task)
    keys = list(fresh)
    for start in range(0, len(keys), 500):
        where = (CampaignTask.campaign_id == campaign_id, CampaignTask.key.in_(keys[start : start + 500]))
        for known in session.scalars(select(CampaignTask.key).where(*where)):
            fresh.pop(known, None)
    return list(fresh.values())


class OutputSummaries:
    """Output datasets that received granules, summarised again (counts, extent, variables) at most every
    `every` seconds while their campaigns run, and once more when one finishes."""

    def __init__(self, sessions: sessionmaker[Session], every: float) -> None:
        self.sessions = sessions
        self.every = every
        self._dirty: set[str] = set()
        self._done: dict[str, float] = {}

    def touch(self, dataset_id: str) -> None:
        self._dirty.add(dataset_id)

    def refresh(self, *, final: bool = False) -> None:
        now = time.monotonic()
        for dataset_id in list(self._dirty):
            if final or now - self._done.get(dataset_id, -self.every) >= self.every:
                self._dirty.discard(dataset_id)
                self._done[dataset_id] = now
                try:
                    with self.sessions() as session:
                        refresh_summary(session, get_dataset(session, dataset_id))
                except Exception:
                    logger.exception("campaign engine: summarising dataset %s failed", dataset_id)


def _copy_tasks(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """COPY the rows into campaign_tasks, in the session's transaction: twice as fast as a batched INSERT."""
    driver = connection.connection.driver_connection
    assert driver is not None
    encoded = [i for i, name in enumerate(TASK_COLUMNS) if name in JSON_COLUMNS]
    with driver.cursor() as cursor, cursor.copy(f"COPY campaign_tasks ({', '.join(TASK_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            values = list(row)
            for index in encoded:
                values[index] = json.dumps(values[index])
            copy.write_row(values)
