"""The campaign engine's state machine: events in, actions out. Synchronous, pure: no I/O, no Dask, no database.

As in dask.distributed's worker state machine, the part that talks to the world (the runner) only reports what
happened as events and carries out the actions in the order given; every decision is taken here, where it is
unit-tested without a cluster. `handle` changes the state in place (copying a million task states per event is not an
option) and returns the actions.

Persistence. Every write the runner makes to SQL comes from an action (`AddTasks`, `UpdateTask`, `UpdateTasks`,
`UpdateCampaign`), carried out in the transaction that records the event, so the rows always say what the machine
knows; after a crash the runner rebuilds the machine from them with `CampaignState.restore` and sends `Resumed`.

Memory. Tasks are numbered 0..n-1 in planning order (their ordinal in the campaign). A task's status and attempts take
one byte each, so a million tasks take 2 MB and every late or duplicate report can be judged exactly. Only the tasks in
flight (at most `max_in_flight`) have more: the worker running them. Pending tasks are found by scanning the status
bytes from a cursor, so submitting never walks a queue of a million ids, and at most `max_in_flight` tasks are ever
submitted and unfinished at once: a campaign over a million granules never holds a million futures.

Rules, where a choice was needed:
- An attempt is counted when a task starts (or ends without a start report). A worker lost under a running task counts
  as a failed attempt, so a granule that crashes workers ends `failed` instead of killing workers forever; the stale
  futures are released (`CancelTasks`) before the task is submitted again.
- `Resumed` (the server restarted) puts running tasks back to pending and gives their attempt back: a crash of the
  platform is not the task's fault.
- A success is accepted from any task not done or cancelled, even one already given up (the output exists and was
  written by temporary name and rename); a late success for a cancelled task is ignored, its output stays on disk.
  Starts and failures only count for the submission in flight (`run`); those of an earlier one are ignored.
- `RetryRequested` puts failed tasks back to pending with no attempts; a cancelled campaign is not retried (submit it
  again: outputs already done are skipped by their keys).
- A campaign with no task completes. `follow: true` keeps the campaign running when every known task is finished,
  until it is cancelled; `FollowNewGranules` adds tasks to it.
- Nothing raises: an event that changes nothing gives an `Ignored` action saying why (worth a debug log line).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from nephelae.errors import InternalError

CampaignStatus = Literal["queued", "running", "completed", "completed_with_failures", "failed", "cancelled"]
TaskStatus = Literal["pending", "running", "done", "failed", "cancelled"]
FINAL: frozenset[CampaignStatus] = frozenset({"completed", "completed_with_failures", "failed", "cancelled"})

# One byte per task. QUEUED is submitted but not started: "pending" to the user and in SQL.
PENDING, QUEUED, RUNNING, DONE, FAILED, CANCELLED = range(6)
PUBLIC: tuple[TaskStatus, ...] = ("pending", "pending", "running", "done", "failed", "cancelled")
CODES: dict[TaskStatus, int] = {
    "pending": PENDING,
    "running": RUNNING,
    "done": DONE,
    "failed": FAILED,
    "cancelled": CANCELLED,
}
IN_FLIGHT = (QUEUED, RUNNING)
UNFINISHED = (PENDING, QUEUED, RUNNING)
CANCEL_UNFINISHED = bytes(CANCELLED if code in UNFINISHED else code for code in range(256))  # for bytearray.translate


# Events: what the runner reports.
@dataclass(frozen=True, slots=True)
class CampaignStarted:
    """The runner took the queued campaign up."""


@dataclass(frozen=True, slots=True)
class TasksPlanned:
    """Tasks `first` .. `first + count - 1` were planned (and their rows written, pending)."""

    first: int
    count: int


@dataclass(frozen=True, slots=True)
class PlanningFinished:
    """Every task of the campaign's selection is planned."""


# A task report names the submission it is about (its number in `Submit.runs`; the runner puts it in the Dask key,
# with a token of its own process), so that a report of an earlier run delivered late, or twice, is never taken for
# the current one's. Run numbers are unique within one runner process; after a crash nothing of the old one reports.
@dataclass(frozen=True, slots=True)
class TaskStarted:
    task: int
    run: int
    worker: str
    at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskSucceeded:
    task: int
    run: int
    outputs: tuple[str, ...] = ()
    at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskFailed:
    task: int
    run: int
    error: str
    traceback: str = ""
    at: dt.datetime | None = None
    retryable: bool = True  # False: retrying cannot help (the processor refused its inputs, say)


@dataclass(frozen=True, slots=True)
class WorkerLost:
    worker: str


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """The owner cancelled the campaign."""


@dataclass(frozen=True, slots=True)
class RetryRequested:
    """The owner asked to run the failed tasks again."""


@dataclass(frozen=True, slots=True)
class Resumed:
    """The runner restarted (after a crash) and rebuilt this state from SQL: nothing it submitted is alive."""


@dataclass(frozen=True, slots=True)
class FollowNewGranules:
    """A standing campaign got tasks `first` .. `first + count - 1` for granules indexed since."""

    first: int
    count: int


@dataclass(frozen=True, slots=True)
class CapacityChanged:
    """The cluster grew or shrank: at most this many tasks submitted and unfinished at once."""

    max_in_flight: int


Event = (
    CampaignStarted
    | TasksPlanned
    | PlanningFinished
    | TaskStarted
    | TaskSucceeded
    | TaskFailed
    | WorkerLost
    | CancelRequested
    | RetryRequested
    | Resumed
    | FollowNewGranules
    | CapacityChanged
)


# Actions: what the runner must do, in order.
@dataclass(frozen=True, slots=True)
class Submit:
    """Submit these tasks to Dask; `runs[i]` numbers the submission of `tasks[i]`, for its reports."""

    tasks: tuple[int, ...]
    runs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CancelTasks:
    """Release these tasks' futures and stop their processes; nothing they report later counts."""

    tasks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UpdateTask:
    """Write one task's row: its status and attempts, and the details of `cause` (worker, outputs, error...)."""

    task: int
    status: TaskStatus
    attempts: int
    cause: Event
    error: str | None = None  # a message of the engine's own, when `cause` does not carry it


@dataclass(frozen=True, slots=True)
class UpdateTasks:
    """Write many rows at once: `UPDATE tasks SET status = :status WHERE campaign = :id AND status IN :where`."""

    where: tuple[TaskStatus, ...]
    status: TaskStatus
    reset_attempts: bool = False


@dataclass(frozen=True, slots=True)
class AddTasks:
    """Insert the rows of planned tasks `first` .. `first + count - 1` (pending, no attempt) kept from planning."""

    first: int
    count: int


@dataclass(frozen=True, slots=True)
class UpdateCampaign:
    """Write the campaign's row."""

    status: CampaignStatus
    planning_finished: bool


@dataclass(frozen=True, slots=True)
class CampaignFinished:
    """The campaign reached a final status: stop planning and following, register the output dataset."""

    status: CampaignStatus


@dataclass(frozen=True, slots=True)
class Ignored:
    """The event changed nothing (late, duplicate, or meaningless in this state)."""

    event: Event
    reason: str


Action = Submit | CancelTasks | AddTasks | UpdateTask | UpdateTasks | UpdateCampaign | CampaignFinished | Ignored


def final_status(*, done: int, failed: int, cancelled: bool) -> CampaignStatus:
    """The status of a campaign none of whose tasks is left to run."""
    if cancelled:
        return "cancelled"
    if failed == 0:
        return "completed"
    return "completed_with_failures" if done else "failed"


@dataclass(slots=True)
class _Flight:
    """A task in flight: the submission it runs as, and its worker once it started."""

    run: int
    worker: str | None = None


class CampaignState:
    """One campaign's state: its status, and the status and attempts of every task."""

    def __init__(self, *, retries: int, max_in_flight: int, follow: bool = False) -> None:
        if not 0 <= retries < 255 or max_in_flight < 1:
            raise InternalError(f"bad campaign limits: retries={retries}, max_in_flight={max_in_flight}")
        self.retries = retries
        self.max_in_flight = max_in_flight
        self.follow = follow
        self.status: CampaignStatus = "queued"
        self.planning_finished = False
        self._codes = bytearray()  # per task, one of PENDING..CANCELLED
        self._attempts = bytearray()
        self._counts = [0] * 6
        self._flights: dict[int, _Flight] = {}  # the tasks in flight
        self._runs = 0  # submissions made by this process
        self._cursor = 0  # no task before this one is PENDING

    @classmethod
    def restore(
        cls,
        *,
        status: CampaignStatus,
        tasks: Iterable[tuple[TaskStatus, int]],
        retries: int,
        max_in_flight: int,
        follow: bool,
        planning_finished: bool,
    ) -> CampaignState:
        """The state persisted in SQL: `tasks` gives (status, attempts) in task order. Send `Resumed` next."""
        state = cls(retries=retries, max_in_flight=max_in_flight, follow=follow)
        state.status, state.planning_finished = status, planning_finished
        for public, attempts in tasks:
            code = CODES[public]
            state._codes.append(code)
            state._attempts.append(min(attempts, 255))
            state._counts[code] += 1
            if code == RUNNING:
                state._flights[len(state._codes) - 1] = _Flight(
                    0
                )  # its run died with the old process (runs start at 1)
        return state

    @property
    def total(self) -> int:
        return len(self._codes)

    @property
    def in_flight(self) -> int:
        """Tasks submitted and not finished."""
        return len(self._flights)

    def counts(self) -> dict[TaskStatus, int]:
        """Tasks per public status (submitted but not started counts as pending)."""
        counts = dict.fromkeys(PUBLIC, 0)
        for code, count in enumerate(self._counts):
            counts[PUBLIC[code]] += count
        return counts

    def task_status(self, task: int) -> TaskStatus:
        return PUBLIC[self._codes[task]]

    def attempts(self, task: int) -> int:
        return self._attempts[task]

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; the actions to carry out, in order."""
        if self.status in FINAL and not isinstance(event, RetryRequested):
            return [Ignored(event, f"the campaign is {self.status}")]
        actions = self._dispatch(event)
        if not any(isinstance(action, Ignored) for action in actions):
            actions += self._settle()
        return actions

    def _dispatch(self, event: Event) -> list[Action]:
        match event:
            case CampaignStarted():
                return self._start(event)
            case TasksPlanned(first, count):
                return self._plan(event, first, count)
            case PlanningFinished():
                return self._planning_finished(event)
            case TaskStarted() | TaskSucceeded() | TaskFailed():
                return self._task_event(event)
            case WorkerLost(worker):
                return self._worker_lost(event, worker)
            case CancelRequested():
                return self._cancel()
            case RetryRequested():
                return self._retry(event)
            case Resumed():
                return self._resume(event)
            case FollowNewGranules(first, count):
                return (
                    self._add(event, first, count) if self.follow else [Ignored(event, "the campaign does not follow")]
                )
            case CapacityChanged(limit):
                self.max_in_flight = max(1, limit)
                return []

    def _start(self, event: CampaignStarted) -> list[Action]:
        if self.status != "queued":
            return [Ignored(event, "the campaign is already running")]
        self.status = "running"
        return [self._row()]

    def _plan(self, event: TasksPlanned, first: int, count: int) -> list[Action]:
        if self.planning_finished:
            return [Ignored(event, "planning is finished; a standing campaign adds tasks with FollowNewGranules")]
        return self._add(event, first, count)

    def _add(self, event: TasksPlanned | FollowNewGranules, first: int, count: int) -> list[Action]:
        if first > self.total or first < 0:
            return [Ignored(event, f"tasks are numbered in order: the next one is {self.total}, not {first}")]
        new = first + count - self.total
        if new <= 0:
            return [Ignored(event, "these tasks are known already")]
        self._codes.extend(bytes(new))  # zeros: PENDING
        self._attempts.extend(bytes(new))
        self._counts[PENDING] += new
        return [AddTasks(self.total - new, new)]

    def _planning_finished(self, event: PlanningFinished) -> list[Action]:
        if self.planning_finished:
            return [Ignored(event, "planning was finished already")]
        self.planning_finished = True
        return [self._row()]

    def _task_event(self, event: TaskStarted | TaskSucceeded | TaskFailed) -> list[Action]:
        task = event.task
        if self.status != "running" or not 0 <= task < self.total:
            return [Ignored(event, f"no task {task} is running in this campaign")]
        code, flight = self._codes[task], self._flights.get(task)
        current = flight is not None and flight.run == event.run
        if isinstance(event, TaskSucceeded):
            return self._succeeded(event, code, current)
        if not current:
            return [Ignored(event, f"task {task} is {PUBLIC[code]} and run {event.run} is not in flight")]
        if isinstance(event, TaskStarted):
            return self._started(event, code)
        if code == QUEUED:  # it failed before it could report its start
            self._attempts[task] += 1
        return [self._attempt_failed(task, event)]

    def _started(self, event: TaskStarted, code: int) -> list[Action]:
        flight = self._flights[event.task]
        if code == RUNNING and flight.worker == event.worker:
            return [Ignored(event, "the task was reported started already")]
        if code == QUEUED:
            self._attempts[event.task] += 1
            self._set(event.task, RUNNING)
        flight.worker = event.worker
        return [UpdateTask(event.task, "running", self._attempts[event.task], event)]

    def _succeeded(self, event: TaskSucceeded, code: int, current: bool) -> list[Action]:
        """Any run's success is the task's: its output exists. Another run of it in flight is then released."""
        if code in (DONE, CANCELLED):
            return [Ignored(event, f"task {event.task} is {PUBLIC[code]} already")]
        actions: list[Action] = [CancelTasks((event.task,))] if code in IN_FLIGHT and not current else []
        if (code == QUEUED and current) or self._attempts[event.task] == 0:
            self._attempts[event.task] += 1  # it ended before it could report its start
        self._set(event.task, DONE)
        return [*actions, UpdateTask(event.task, "done", self._attempts[event.task], event)]

    def _attempt_failed(self, task: int, cause: TaskFailed | WorkerLost, error: str | None = None) -> UpdateTask:
        """An attempt ended badly: try again while attempts remain and it may help, else give up."""
        retry = self._attempts[task] <= self.retries and (isinstance(cause, WorkerLost) or cause.retryable)
        self._set(task, PENDING if retry else FAILED)
        return UpdateTask(task, "pending" if retry else "failed", self._attempts[task], cause, error)

    def _worker_lost(self, event: WorkerLost, worker: str) -> list[Action]:
        lost = tuple(task for task, flight in self._flights.items() if flight.worker == worker)
        if self.status != "running" or not lost:
            return [Ignored(event, f"no task was running on {worker}")]
        actions: list[Action] = [CancelTasks(lost)]
        for task in lost:
            message = f"the worker {worker} running this task was lost (attempt {self._attempts[task]})"
            actions.append(self._attempt_failed(task, event, message))
        return actions

    def _cancel(self) -> list[Action]:
        in_flight = tuple(sorted(self._flights))
        for code in UNFINISHED:
            self._counts[CANCELLED] += self._counts[code]
            self._counts[code] = 0
        self._codes = self._codes.translate(CANCEL_UNFINISHED)
        self._flights.clear()
        actions: list[Action] = [CancelTasks(in_flight)] if in_flight else []
        return [*actions, UpdateTasks(("pending", "running"), "cancelled"), *self._finish("cancelled")]

    def _retry(self, event: RetryRequested) -> list[Action]:
        if self.status in ("queued", "cancelled") or not self._counts[FAILED]:
            return [Ignored(event, f"no failed task to retry in this {self.status} campaign")]
        task = self._codes.find(FAILED)
        while task >= 0:
            self._set(task, PENDING)
            self._attempts[task] = 0
            task = self._codes.find(FAILED, task + 1)
        actions: list[Action] = [UpdateTasks(("failed",), "pending", reset_attempts=True)]
        if self.status != "running":
            self.status = "running"
            actions.append(self._row())
        return actions

    def _resume(self, event: Resumed) -> list[Action]:
        if self.status != "running":
            return [Ignored(event, "the campaign had not started")]
        in_flight = tuple(sorted(self._flights))
        actions: list[Action] = [CancelTasks(in_flight)] if in_flight else []  # dead after a crash; if not, now
        for task in in_flight:
            if self._codes[task] == RUNNING:  # its attempt was cut short by the crash: given back
                self._attempts[task] = max(0, self._attempts[task] - 1)
                actions.append(UpdateTask(task, "pending", self._attempts[task], event))
            self._set(task, PENDING)
        return actions

    def _set(self, task: int, code: int) -> None:
        old = self._codes[task]
        self._counts[old] -= 1
        self._counts[code] += 1
        self._codes[task] = code
        if code not in IN_FLIGHT:
            self._flights.pop(task, None)
        if code == PENDING:
            self._cursor = min(self._cursor, task)

    def _settle(self) -> list[Action]:
        """Submit pending tasks into the free room; finish the campaign when nothing is left to run."""
        if self.status != "running":
            return []
        tasks = []
        while len(self._flights) < self.max_in_flight:
            task = self._codes.find(PENDING, self._cursor)
            if task < 0:
                self._cursor = self.total
                break
            self._cursor = task + 1
            self._set(task, QUEUED)
            self._runs += 1
            self._flights[task] = _Flight(self._runs)
            tasks.append(task)
        actions: list[Action] = [Submit(tuple(tasks), tuple(self._flights[t].run for t in tasks))] if tasks else []
        if self.planning_finished and not self.follow and not any(self._counts[code] for code in UNFINISHED):
            actions += self._finish(final_status(done=self._counts[DONE], failed=self._counts[FAILED], cancelled=False))
        return actions

    def _finish(self, status: CampaignStatus) -> list[Action]:
        self.status = status
        return [self._row(), CampaignFinished(status)]

    def _row(self) -> UpdateCampaign:
        return UpdateCampaign(self.status, self.planning_finished)
