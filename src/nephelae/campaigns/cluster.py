"""The Dask side of campaigns: connecting to a cluster, and the function that wraps every task on a worker.

The engine talks to any Dask scheduler: `settings.dask_scheduler` (a cluster started by dask-jobqueue on PBS or
Slurm, Kubernetes, or `dask scheduler` / `dask worker` by hand), else a `LocalCluster` of worker processes sized to
the machine, created when the first campaign needs it. Paths in task requests are absolute: on a cluster of many
machines, the archive, the home's `workspaces/` and `campaigns/` must be mounted at the same paths everywhere.

`run_on_worker` runs on a worker around the task's runner (`campaigns.execute.run_task`): it reports the start (an
event on the `TOPIC` topic, which the engine subscribes to) and reads the catalog metadata of the outputs, so that
the engine registers them in the output dataset without opening a file itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import import_module
from queue import SimpleQueue
from typing import Any

from nephelae.campaigns.state import TaskFailed, TaskStarted, TaskSucceeded
from nephelae.campaigns.tasks import TaskRequest, TaskResult
from nephelae.catalog.metadata import GranuleMetadata
from nephelae.catalog.reader import UnreadableGranule, read_granule_metadata
from nephelae.catalog.stores import granule_stat
from nephelae.config import Settings
from nephelae.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

TOPIC = "nephelae-campaigns"
MAX_LOCAL_WORKERS = 32
CONNECT_TIMEOUT = "30s"
RESULT_TIMEOUT = 60.0  # seconds to fetch a finished task's result from its worker

Runner = Callable[[TaskRequest], TaskResult]


@dataclass(frozen=True)
class DescribedOutput:
    """An output file as the catalog will record it: its metadata, or why it cannot be read."""

    path: str
    size: int
    mtime_ns: int
    metadata: GranuleMetadata | None
    reason: str | None = None


@dataclass(frozen=True)
class WorkerReport:
    """What a task sends back: the runner's result and the catalog description of its outputs."""

    result: TaskResult
    outputs: tuple[DescribedOutput, ...] = ()


def run_on_worker(runner: Runner, request: TaskRequest) -> WorkerReport:
    """Run one task on a Dask worker: report its start, run it, describe its outputs."""
    worker = import_module("distributed").get_worker()
    started = {"campaign": request.campaign_id, "ordinal": request.ordinal, "run": request.run}
    key = str(worker.get_current_task())  # names the engine process that submitted it
    worker.log_event(TOPIC, {**started, "key": key, "worker": worker.address, "at": time.time()})
    result = runner(request)
    if result.error is not None:
        return WorkerReport(result)
    return WorkerReport(result, tuple(describe_output(output.path) for output in result.outputs))


def describe_output(path: str) -> DescribedOutput:
    """The catalog metadata of one output file; never raises for the file's sake."""
    try:
        size, mtime = granule_stat(path)
    except OSError as error:
        return DescribedOutput(path, 0, 0, None, f"the output vanished: {error.strerror}")
    try:
        return DescribedOutput(path, size, mtime, read_granule_metadata(path))
    except UnreadableGranule as error:
        return DescribedOutput(path, size, mtime, None, error.reason)


def _interrupt_everywhere(client: Any, campaign_id: int, tasks: list[int]) -> None:
    interrupt_tasks = import_module("nephelae.campaigns.execute").interrupt_tasks
    try:
        client.run(interrupt_tasks, campaign_id, tasks)
    except Exception:  # a worker gone meanwhile: nothing to stop there
        logger.warning("campaign engine: stopping the tasks of campaign %d on some worker failed", campaign_id)


class Cluster:
    """A Dask client, and the LocalCluster behind it when the platform started one."""

    def __init__(self, client: Any, local: Any | None = None) -> None:
        self.client = client
        self.local = local

    def threads(self) -> dict[str, int]:
        """Threads of each worker, by worker address."""
        return dict(self.client.nthreads())

    def close(self) -> None:
        """Disconnect; a LocalCluster (and its worker processes) is shut down."""
        try:
            self.client.close(timeout=10)
        finally:
            if self.local is not None:
                self.local.close(timeout=10)


class DaskBridge:
    """The engine's link to Dask, made on first use. What Dask reports (on its own threads) is only put on the
    engine's queue: ("started", message), ("lost", worker), ("done", campaign, task, run, future)."""

    def __init__(
        self, settings: Settings, connect: Callable[[Settings], Cluster], inbox: SimpleQueue[Any], runner: Runner | None
    ) -> None:
        self.settings = settings
        self.token = secrets.token_hex(4)  # in Dask keys: reports of earlier engine processes are told apart
        self.window = 2  # tasks in flight at most: twice the cluster's threads
        self._connect = connect
        self._inbox = inbox
        self._runner = runner
        self._cluster: Cluster | None = None

    @property
    def cluster(self) -> Cluster | None:
        return self._cluster

    def ensure(self) -> Cluster:
        """Connected, listening to the workers' start reports and the scheduler's worker removals."""
        if self._cluster is not None and self._cluster.client.status in ("closing", "closed"):
            logger.error("campaign engine: the Dask client was closed (scheduler gone?); connecting again")
            self.close()
        if self._cluster is None:
            made = self._connect(self.settings)
            made.client.subscribe_topic(TOPIC, self._on_started)
            made.client.subscribe_topic("all", self._on_scheduler_event)
            self._cluster = made
            self.measure()
        return self._cluster

    def measure(self) -> bool:
        """Size the window from the cluster's threads now; whether it changed."""
        window = max(2, 2 * sum(self.ensure().threads().values()))
        changed, self.window = window != self.window, window
        return changed

    def submit(self, campaign_id: int, tasks: Sequence[tuple[int, int, TaskRequest]]) -> list[Any]:
        """Submit (task, run, request) triples; their futures, in order, each calling back when done."""
        runner = self._runner or import_module("nephelae.campaigns.execute").run_task
        keys = [f"c{campaign_id}-t{task}-r{run}-{self.token}" for task, run, _ in tasks]
        requests = [request for _, _, request in tasks]
        futures = self.ensure().client.map(
            run_on_worker, [runner] * len(requests), requests, key=keys, pure=False, retries=0
        )
        for (task, run, _), future in zip(tasks, futures, strict=True):
            future.add_done_callback(partial(self._on_done, campaign_id, task, run))
        return list(futures)

    def cancel(self, futures: Sequence[Any]) -> None:
        if futures and self._cluster is not None:
            self._cluster.client.cancel(list(futures), force=True)

    def interrupt(self, campaign_id: int, tasks: Sequence[int]) -> None:
        """Stop the sandboxes running these tasks on every worker, in the background (a slow worker blocks nothing)."""
        if not tasks or self._cluster is None:
            return
        client = self._cluster.client
        threading.Thread(
            target=_interrupt_everywhere,
            args=(client, campaign_id, list(tasks)),
            name="nephelae-interrupt",
            daemon=True,
        ).start()

    def close(self) -> None:
        if self._cluster is not None:
            with contextlib.suppress(Exception):  # else the scheduler tells this client of its own leaving, too late
                for topic in (TOPIC, "all"):
                    self._cluster.client.unsubscribe_topic(topic)
            try:
                self._cluster.close()
            except Exception:
                logger.exception("campaign engine: closing the Dask connection failed")
            self._cluster = None

    def _on_started(self, event: tuple[float, Mapping[str, Any]]) -> None:
        self._inbox.put(("started", event[1]))  # on Dask's event loop

    def _on_scheduler_event(self, event: tuple[float, Mapping[str, Any]]) -> None:
        message = event[1]
        if isinstance(message, Mapping) and message.get("action") == "remove-worker":
            self._inbox.put(("lost", str(message.get("worker"))))

    def _on_done(self, campaign_id: int, task: int, run: int, future: Any) -> None:
        self._inbox.put(("done", campaign_id, task, run, future))  # on Dask's callback thread


def connect(settings: Settings) -> Cluster:
    """A client of `settings.dask_scheduler`, or of a new LocalCluster of worker processes sized to the machine."""
    distributed: Any = import_module("distributed")  # partly typed: Any at this boundary
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    if settings.dask_scheduler:
        try:
            return Cluster(Client(settings.dask_scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False))
        except OSError as error:
            raise ServiceUnavailable(
                f"cannot reach the Dask scheduler at {settings.dask_scheduler} ({error}); start it, or unset "
                "NEPHELAE_DASK_SCHEDULER to run campaigns on a LocalCluster of this machine"
            ) from None
    local = LocalCluster(
        n_workers=local_worker_count(settings),
        threads_per_worker=settings.dask_threads_per_worker,
        processes=True,
        dashboard_address="127.0.0.1:0",  # loopback, a free port: several homes may run on one machine
        silence_logs=logging.ERROR,
    )
    client = Client(local, set_as_default=False)
    logger.info(
        "campaign engine: a LocalCluster of %d workers, dashboard at %s", len(local.workers), client.dashboard_link
    )
    return Cluster(client, local)


def local_worker_count(settings: Settings) -> int:
    """The LocalCluster's worker processes: the setting, else one per core (capped)."""
    return settings.dask_workers or min(os.cpu_count() or 1, MAX_LOCAL_WORKERS)


def task_outcome(future: Any, task: int, run: int) -> tuple[TaskSucceeded | TaskFailed, WorkerReport | None]:
    """The event a finished Dask future stands for, and the worker's report when it sent one."""
    now = dt.datetime.now(dt.UTC)
    if future.status == "finished":
        report: WorkerReport = future.result(timeout=RESULT_TIMEOUT)
        result = report.result
        if result.error is None:
            return TaskSucceeded(task, run, tuple(output.path for output in result.outputs), at=now), report
        failure = TaskFailed(task, run, result.error, result.traceback or "", at=now, retryable=result.retryable)
        return failure, report
    if future.status == "error":
        error = future.exception(timeout=RESULT_TIMEOUT)
        trace = "".join(traceback.format_exception(type(error), error, future.traceback(timeout=RESULT_TIMEOUT)))
        if type(error).__name__ == "KilledWorker":
            message = f"the Dask workers running this task died, again and again ({error}); it may need more memory"
        else:
            message = f"the platform could not run this task: {type(error).__name__}: {error}"
        return TaskFailed(task, run, message, trace, at=now), None
    return TaskFailed(task, run, f"the Dask cluster lost this task ({future.status})", at=now), None


def started_event(message: Mapping[str, Any], token: str) -> tuple[int, TaskStarted] | None:
    """The campaign and start event a worker reported, if the task was submitted by the engine holding `token`."""
    if not str(message.get("key", "")).endswith(f"-{token}"):
        return None  # submitted by an engine process that is gone
    at = dt.datetime.fromtimestamp(float(message["at"]), dt.UTC)
    event = TaskStarted(int(message["ordinal"]), int(message["run"]), str(message["worker"]), at)
    return int(message["campaign"]), event


def lost_result(task: int, run: int, error: Exception) -> TaskFailed:
    """A task whose result could not be fetched (its worker died after finishing it): a failed attempt."""
    message = f"the result of this task was lost before the engine got it ({type(error).__name__}: {error})"
    return TaskFailed(task, run, message, at=dt.datetime.now(dt.UTC))
