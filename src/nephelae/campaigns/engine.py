"""The campaign engine: a thread in the server that carries out what each campaign's state machine decides.

Every half second (sooner when Dask reports), one turn of the engine thread:

1. takes up the campaigns that are queued or running, or carry a user's request (`Campaign.request`, left by the
   service), rebuilding each state machine from SQL (`restore_state`, then `Resumed`: whatever the previous server
   process had submitted is gone with it);
2. turns what Dask reported into events: task starts (an event each worker logs on `cluster.TOPIC`), finished
   futures (collected through done callbacks into a queue: Dask's threads never touch SQL), lost workers (the
   scheduler's `remove-worker` events) and a cluster that grew or shrank (`CapacityChanged`, 2 x its threads);
3. plans tasks a batch at a time (`selection.PlanFeed`), recording where planning stands, so that it resumes exactly
   there after a crash, and, for standing campaigns, plans the granules indexed since the last look;
4. hands each event to the campaign's state machine and carries the actions out in order: the SQL ones in the
   transaction that records the events (`persist.SqlWriter`), then, once committed, `Submit` and `CancelTasks` on
   Dask. A task submitted twice (after a crash) writes its output once: outputs are named by key, written under a
   temporary name and renamed, and an existing one is reused.

Only one engine works on a database at a time (`EngineLock`): another one waits, and takes over when it stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from nephelae.campaigns import cluster as dask_side
from nephelae.campaigns.cluster import Cluster, DaskBridge, Runner, WorkerReport
from nephelae.campaigns.lock import EngineLock
from nephelae.campaigns.persist import (
    CampaignContext,
    OutputSummaries,
    SqlWriter,
    clear_request,
    fail_campaign,
    restore_state,
    task_requests,
    unknown_tasks,
)
from nephelae.campaigns.planning import PlannedTask
from nephelae.campaigns.selection import Follower, PlanFeed, selections
from nephelae.campaigns.state import (
    FINAL,
    CampaignStarted,
    CampaignState,
    CancelRequested,
    CancelTasks,
    CapacityChanged,
    Event,
    FollowNewGranules,
    Ignored,
    PlanningFinished,
    Resumed,
    RetryRequested,
    Submit,
    TasksPlanned,
    WorkerLost,
)
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Campaign
from nephelae.errors import NephelaeError, ServiceUnavailable

logger = logging.getLogger(__name__)

PLAN_BATCH = 10_000  # tasks planned and inserted per transaction (a second or so of the write lock, at most)
FOLLOW_SECONDS = 5.0  # how often standing campaigns look for newly indexed granules
CAPACITY_SECONDS = 1.0
REFRESH_SECONDS = 10.0  # output dataset summaries, while campaigns run
MAX_FAILURES = 5  # consecutive unexpected errors on one campaign before it is marked failed
ACTIVE = ("queued", "running")
REQUESTS: dict[str, Callable[[], Event]] = {"cancel": CancelRequested, "retry": RetryRequested}


@dataclass
class _Live:
    """A campaign the engine is running: its state machine and what it holds outside SQL."""

    id: int
    state: CampaignState
    context: CampaignContext
    follower: Follower
    feed: PlanFeed | None = None
    futures: dict[int, tuple[int, Any]] = field(default_factory=dict)  # task -> (run, Dask future)


@dataclass
class _Batch:
    """Events for one campaign, and what the SQL actions of their transaction need besides."""

    events: list[Event] = field(default_factory=list)
    planned: Sequence[PlannedTask] = ()
    reports: dict[tuple[int, int], WorkerReport] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)  # Campaign columns to write
    request: str | None = None  # the user's request these events answer, cleared when handled


class CampaignEngine:
    """Runs every campaign of one database on Dask from a background thread; `start()` and `stop()` it.

    `runner` is what runs a task on a worker (default `campaigns.execute.run_task`); `connect` makes the Dask
    connection (default: `settings.dask_scheduler`, else a LocalCluster).
    """

    def __init__(
        self,
        settings: Settings,
        sql_engine: Engine,
        *,
        runner: Runner | None = None,
        connect: Callable[[Settings], Cluster] = dask_side.connect,
        tick: float = 0.5,
    ) -> None:
        self.settings = settings
        self.sql = sql_engine
        self.sessions = session_factory(sql_engine)
        self.tick = tick
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._held: list[tuple[Any, ...]] = []  # messages taken off the queue while waiting
        self._dask = DaskBridge(settings, connect, self._inbox, runner)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = EngineLock(settings, sql_engine)
        self._live: dict[int, _Live] = {}
        self._failures: dict[int, int] = {}
        self._cancelled: set[tuple[int, int, int]] = set()  # (campaign, task, run) released on purpose
        self._summaries = OutputSummaries(self.sessions, REFRESH_SECONDS)
        self._next: dict[str, float] = {}

    def start(self) -> None:
        """Start the engine thread (Dask is connected when the first campaign needs it)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="nephelae-campaign-engine", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the thread and disconnect from Dask. Running tasks are taken up again by the next engine."""
        self._stopping.set()
        self._inbox.put(("wake",))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def cluster(self) -> Cluster | None:
        """The Dask connection, once a campaign needed it."""
        return self._dask.cluster

    # The thread.

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                busy = False
                try:
                    busy = self._turn()
                except Exception:
                    logger.exception("campaign engine: the turn failed; trying again")
                    self._stopping.wait(self.tick * 4)
                self._wait(0 if busy else self.tick)
        finally:
            for live in list(self._live.values()):
                self._forget(live)
            self._dask.close()
            self._lock.release()

    def _turn(self) -> bool:
        """One round of the engine; True when there is more planning to do straight away."""
        if not self._lock.acquire():
            for live in list(self._live.values()):  # the lock was lost: another engine may take these up
                self._forget(live)
            return False
        self._scan()
        self._deliver(self._drain())
        busy = self._plan()
        if self._due("follow", FOLLOW_SECONDS):
            self._follow()
        if self._dask.cluster is not None and self._due("capacity", CAPACITY_SECONDS) and self._dask.measure():
            logger.info("campaign engine: at most %d tasks in flight (2 x the threads)", self._dask.window)
            for live in list(self._live.values()):
                self._guarded(live, partial(self._answer, _Batch([CapacityChanged(self._dask.window)])))
        self._summaries.refresh()
        return busy

    def _wait(self, seconds: float) -> None:
        """Sleep until something is reported or `seconds` pass; what arrived is kept for the next turn."""
        if seconds > 0 and not self._held:
            with contextlib.suppress(queue.Empty):
                self._held.append(self._inbox.get(timeout=seconds))

    def _drain(self) -> list[tuple[Any, ...]]:
        messages, self._held = self._held, []
        while True:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                return messages

    def _due(self, what: str, every: float) -> bool:
        now = time.monotonic()
        if now < self._next.get(what, 0.0):
            return False
        self._next[what] = now + every
        return True

    # Campaigns: taking them up, their users' requests, failures.

    def _scan(self) -> None:
        wanted = or_(Campaign.status.in_(ACTIVE), Campaign.request.is_not(None))
        with self.sql.connect() as connection:
            rows = connection.execute(select(Campaign.id, Campaign.request).where(wanted).order_by(Campaign.id)).all()
        if rows:
            self._dask.ensure()  # unreachable: the turn fails and is tried again; campaigns stay as they are
        for campaign_id, request in rows:
            live = self._live.get(campaign_id) or self._load(campaign_id)
            if live is not None and request is not None:
                events: list[Event] = [REQUESTS[request]()] if request in REQUESTS else []  # anything else: dropped
                self._guarded(live, partial(self._answer, _Batch(events, request=request)))

    def _load(self, campaign_id: int) -> _Live | None:
        """The campaign's state machine rebuilt from SQL, started or resumed; None if it could not be."""
        try:
            with self.sessions() as session:
                campaign = session.get(Campaign, campaign_id)
                if campaign is None:
                    return None
                context = CampaignContext.load(session, campaign, self.settings)
                state = restore_state(session, campaign, max_in_flight=self._dask.window)
                live = _Live(campaign_id, state, context, Follower(campaign.followed_until))
        except NephelaeError as error:
            self._fail(campaign_id, error.detail)
            return None
        self._live[campaign_id] = live
        if state.status in ACTIVE:  # nothing the previous engine submitted reports to this one: Resumed
            first = CampaignStarted() if state.status == "queued" else Resumed()
            self._guarded(live, partial(self._answer, _Batch([first])))
        return self._live.get(campaign_id)

    def _answer(self, batch: _Batch, live: _Live) -> None:
        self._apply(live, batch)

    def _guarded(self, live: _Live, step: Callable[[_Live], None]) -> None:
        """Run one step of a campaign; on an error, forget it (SQL has the truth) and take it up again later."""
        try:
            step(live)
            self._failures.pop(live.id, None)
        except (ServiceUnavailable, OperationalError):  # Dask or the database is away: not the campaign's fault
            self._forget(live)
            raise
        except NephelaeError as error:
            self._forget(live)
            self._fail(live.id, error.detail)
        except Exception as error:
            logger.exception("campaign engine: campaign %d failed a step; reloading it from the database", live.id)
            self._forget(live)
            self._failures[live.id] = self._failures.get(live.id, 0) + 1
            if self._failures[live.id] >= MAX_FAILURES:
                self._fail(live.id, f"internal error of the campaign engine ({type(error).__name__}: {error})")

    def _forget(self, live: _Live) -> None:
        self._release(live, list(live.futures))
        self._live.pop(live.id, None)

    def _fail(self, campaign_id: int, detail: str) -> None:
        logger.error("campaign engine: campaign %d failed: %s", campaign_id, detail)
        with self.sessions.begin() as session:
            fail_campaign(session, campaign_id, detail)
        self._failures.pop(campaign_id, None)

    # Events in, actions out.

    def _apply(self, live: _Live, batch: _Batch) -> None:
        """Hand the events to the state machine; SQL actions in one transaction, then the Dask ones, in order."""
        dask_actions: list[Submit | CancelTasks] = []
        with self.sessions.begin() as session:
            writer = self._writer(session, live, batch)
            for event in batch.events:
                for action in live.state.handle(event):
                    if isinstance(action, Submit | CancelTasks):
                        dask_actions.append(action)
                    elif isinstance(action, Ignored):
                        logger.debug("campaign %d: %s ignored: %s", live.id, action.event, action.reason)
                    else:
                        writer.apply(action)
            for name, value in batch.changes.items():
                setattr(writer.campaign, name, value)
            if batch.request is not None:
                clear_request(session, live.id, batch.request)
            writer.write_counts(live.state)
            requests = task_requests(session, live.context, _submissions(dask_actions))
        if writer.registered:
            self._summaries.touch(live.context.output_dataset)
        for action in dask_actions:
            if isinstance(action, Submit):
                batch_of = [(task, run, requests[task]) for task, run in zip(action.tasks, action.runs, strict=True)]
                for (task, run, _), future in zip(batch_of, self._dask.submit(live.id, batch_of), strict=True):
                    live.futures[task] = (run, future)
            else:
                self._release(live, action.tasks)
                self._dask.interrupt(live.id, action.tasks)
        if live.state.status in FINAL:
            self._finished(live)

    def _writer(self, session: Session, live: _Live, batch: _Batch) -> SqlWriter:
        campaign = session.get(Campaign, live.id)
        if campaign is None:
            raise NephelaeError(f"campaign {live.id} was deleted while it ran")
        writer = SqlWriter(session, campaign, live.context)
        writer.planned = {live.state.total + number: task for number, task in enumerate(batch.planned)}
        writer.reports = batch.reports
        return writer

    def _release(self, live: _Live, tasks: Sequence[int]) -> None:
        """Cancel the futures of these tasks; what they report from now on is dropped."""
        futures = []
        for task in tasks:
            if task in live.futures:
                run, future = live.futures.pop(task)
                self._cancelled.add((live.id, task, run))
                futures.append(future)
        self._dask.cancel(futures)

    def _finished(self, live: _Live) -> None:
        self._forget(live)
        self._summaries.touch(live.context.output_dataset)
        self._summaries.refresh(final=True)

    def _deliver(self, messages: list[tuple[Any, ...]]) -> None:
        """What Dask reported, as events for each campaign concerned."""
        batches: dict[int, _Batch] = {}
        for message in messages:
            kind = message[0]
            if kind == "done":
                self._collect(batches, *message[1:])
            elif kind == "started" and (found := dask_side.started_event(message[1], self._dask.token)) is not None:
                batches.setdefault(found[0], _Batch()).events.append(found[1])
            elif kind == "lost":
                for campaign_id in self._live:
                    batches.setdefault(campaign_id, _Batch()).events.append(WorkerLost(message[1]))
        for campaign_id, batch in batches.items():
            if (live := self._live.get(campaign_id)) is not None:
                self._guarded(live, partial(self._answer, batch))

    def _collect(self, batches: dict[int, _Batch], campaign_id: int, task: int, run: int, future: Any) -> None:
        """A finished future: its outcome as an event (with the worker's report), the future released."""
        live = self._live.get(campaign_id)
        if (campaign_id, task, run) in self._cancelled or live is None:
            self._cancelled.discard((campaign_id, task, run))
            return
        if task in live.futures and live.futures[task][0] == run:
            del live.futures[task]
        try:
            event, report = dask_side.task_outcome(future, task, run)
        except Exception as error:  # the result could not be fetched (its worker died meanwhile): a failed attempt
            event, report = dask_side.lost_result(task, run, error), None
        batch = batches.setdefault(campaign_id, _Batch())
        batch.events.append(event)
        if report is not None:
            batch.reports[(task, run)] = report
        future.release()

    # Planning, following, and the output datasets.

    def _plan(self) -> bool:
        busy = False
        for live in list(self._live.values()):
            if live.state.status == "running" and not live.state.planning_finished:
                self._guarded(live, self._plan_batch)
                busy = busy or (live.id in self._live and not live.state.planning_finished)
        return busy

    def _plan_batch(self, live: _Live) -> None:
        """Plan the next batch of tasks; the cursor saying where planning stands goes in the same transaction."""
        changes: dict[str, Any] = {}
        spec = live.context.spec
        if live.feed is None:
            with self.sessions() as session:
                cursor = session.scalar(select(Campaign.plan_cursor).where(Campaign.id == live.id))
            if spec.follow and live.follower.since is None:
                live.follower.start(self.sql, spec)
                changes["followed_until"] = live.follower.since
            inputs = selections(self.sql, spec)
            live.feed = PlanFeed(self.sql, spec, inputs, live.context.processor_identity, json.loads(cursor or "{}"))
        tasks = live.feed.take(PLAN_BATCH)
        events: list[Event] = [TasksPlanned(live.state.total, len(tasks))] if tasks else []
        if len(tasks) < PLAN_BATCH:
            events.append(PlanningFinished())
        if tasks:
            changes["plan_cursor"] = json.dumps(live.feed.cursor(tasks[-1]))
        self._apply(live, _Batch(events, planned=tasks, changes=changes))

    def _follow(self) -> None:
        for live in list(self._live.values()):
            if live.context.spec.follow and live.state.planning_finished and live.state.status == "running":
                self._guarded(live, self._follow_campaign)

    def _follow_campaign(self, live: _Live) -> None:
        """Plan the granules indexed since the last look; tasks already planned (same key) are not made again."""
        since = live.follower.since
        for tasks in live.follower.look(self.sql, live.context.spec, live.context.processor_identity, PLAN_BATCH):
            with self.sessions() as session:
                fresh = unknown_tasks(session, live.id, tasks)
            if fresh:
                self._apply(live, _Batch([FollowNewGranules(live.state.total, len(fresh))], planned=fresh))
            if live.id not in self._live:  # cancelled meanwhile
                return
        if live.follower.since != since:
            self._apply(live, _Batch(changes={"followed_until": live.follower.since}))


def _submissions(actions: Sequence[Submit | CancelTasks]) -> dict[int, int]:
    """Task -> run of every submission among `actions`."""
    runs: dict[int, int] = {}
    for action in actions:
        if isinstance(action, Submit):
            runs.update(zip(action.tasks, action.runs, strict=True))
    return runs
