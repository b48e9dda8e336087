"""The campaign state machine, without cluster or database: every transition, then seeded random event sequences."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from nephelae.campaigns.state import (
    Action,
    AddTasks,
    CampaignFinished,
    CampaignStarted,
    CampaignState,
    CampaignStatus,
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
    TaskFailed,
    TasksPlanned,
    TaskStarted,
    TaskStatus,
    TaskSucceeded,
    UpdateCampaign,
    UpdateTask,
    UpdateTasks,
    WorkerLost,
    final_status,
)
from nephelae.errors import InternalError


def running(tasks: int, *, retries: int = 2, max_in_flight: int = 2, follow: bool = False) -> CampaignState:
    state = CampaignState(retries=retries, max_in_flight=max_in_flight, follow=follow)
    state.handle(CampaignStarted())
    state.handle(TasksPlanned(0, tasks))
    return state


def of_type(actions: list[Action], kind: type) -> list[Action]:
    return [action for action in actions if isinstance(action, kind)]


def submitted(actions: list[Action]) -> list[int]:
    return [task for action in actions if isinstance(action, Submit) for task in action.tasks]


def is_ignored(actions: list[Action]) -> bool:
    return len(actions) == 1 and isinstance(actions[0], Ignored)


# Start and planning


def test_start_moves_a_queued_campaign_to_running_once() -> None:
    state = CampaignState(retries=1, max_in_flight=4)
    assert state.status == "queued"
    assert state.handle(CampaignStarted()) == [UpdateCampaign("running", planning_finished=False)]
    assert is_ignored(state.handle(CampaignStarted()))


def test_tasks_planned_before_the_start_wait_and_are_submitted_in_a_bounded_window() -> None:
    state = CampaignState(retries=1, max_in_flight=3)
    assert state.handle(TasksPlanned(0, 10)) == [AddTasks(0, 10)]
    actions = state.handle(CampaignStarted())
    assert actions == [UpdateCampaign("running", False), Submit((0, 1, 2), (1, 2, 3))]
    assert state.in_flight == 3
    assert state.counts() == {"pending": 10, "running": 0, "done": 0, "failed": 0, "cancelled": 0}


def test_planned_batches_are_numbered_in_order_and_duplicates_are_ignored() -> None:
    state = running(2, max_in_flight=10)
    assert is_ignored(state.handle(TasksPlanned(5, 1)))  # a gap
    assert is_ignored(state.handle(TasksPlanned(0, 2)))  # known already
    assert state.handle(TasksPlanned(1, 3)) == [AddTasks(2, 2), Submit((2, 3), (3, 4))]  # only the new part
    assert state.total == 4


def test_planning_finished_with_no_task_completes_and_a_second_one_is_ignored() -> None:
    state = running(0)
    assert state.handle(PlanningFinished()) == [
        UpdateCampaign("running", True),
        UpdateCampaign("completed", True),
        CampaignFinished("completed"),
    ]
    planned_first = CampaignState(retries=0, max_in_flight=1)
    assert planned_first.handle(PlanningFinished()) == [UpdateCampaign("queued", True)]
    assert is_ignored(planned_first.handle(PlanningFinished()))
    assert planned_first.handle(CampaignStarted())[-1] == CampaignFinished("completed")


def test_tasks_planned_after_planning_finished_are_ignored() -> None:
    state = running(1)
    state.handle(PlanningFinished())
    assert is_ignored(state.handle(TasksPlanned(1, 1)))


# Task reports (running(3) submits task 0 as run 1 and task 1 as run 2)


def test_a_started_task_runs_and_counts_an_attempt_once() -> None:
    state = running(3)
    assert state.handle(TaskStarted(1, 2, "w1")) == [UpdateTask(1, "running", 1, TaskStarted(1, 2, "w1"))]
    assert is_ignored(state.handle(TaskStarted(1, 2, "w1")))
    moved = state.handle(TaskStarted(1, 2, "w2"))  # Dask moved it: new worker, same attempt
    assert moved == [UpdateTask(1, "running", 1, TaskStarted(1, 2, "w2"))]
    assert state.attempts(1) == 1 and state.task_status(1) == "running"


@pytest.mark.parametrize(
    "event",
    [
        TaskStarted(2, 3, "w1"),  # task 2 is pending, not submitted
        TaskFailed(2, 3, "boom"),
        TaskStarted(0, 2, "w1"),  # run 2 is task 1's
        TaskFailed(0, 7, "boom"),
        TaskStarted(99, 1, "w1"),
        TaskStarted(-1, 1, "w1"),
    ],
)
def test_reports_for_tasks_not_in_flight_or_of_another_run_are_ignored(event: Event) -> None:
    state = running(3)
    assert is_ignored(state.handle(event))
    assert state.counts()["pending"] == 3


def test_task_reports_before_the_start_are_ignored() -> None:
    state = CampaignState(retries=0, max_in_flight=1)
    state.handle(TasksPlanned(0, 1))
    assert is_ignored(state.handle(TaskSucceeded(0, 1)))


def test_a_success_finishes_the_task_and_frees_room_for_the_next() -> None:
    state = running(3)
    state.handle(TaskStarted(0, 1, "w1"))
    actions = state.handle(TaskSucceeded(0, 1, ("out.nc",)))
    assert actions == [UpdateTask(0, "done", 1, TaskSucceeded(0, 1, ("out.nc",))), Submit((2,), (3,))]


def test_a_duplicate_success_does_not_count_twice() -> None:
    state = running(2)
    state.handle(TaskSucceeded(0, 1))
    assert is_ignored(state.handle(TaskSucceeded(0, 1)))
    assert state.counts()["done"] == 1 and state.attempts(0) == 1  # no start report: the attempt counts at the end


def test_a_late_success_of_an_earlier_run_finishes_the_task_and_releases_the_current_run() -> None:
    state = running(1, max_in_flight=1)
    state.handle(TaskStarted(0, 1, "w1"))
    state.handle(WorkerLost("w1"))  # resubmitted as run 2
    assert state.handle(TaskSucceeded(0, 1)) == [CancelTasks((0,)), UpdateTask(0, "done", 1, TaskSucceeded(0, 1))]
    assert state.in_flight == 0


def test_a_late_success_of_a_failed_task_is_accepted() -> None:
    state = running(1, retries=0)
    state.handle(TaskFailed(0, 1, "boom"))
    assert state.task_status(0) == "failed"
    assert state.handle(TaskSucceeded(0, 1)) == [UpdateTask(0, "done", 1, TaskSucceeded(0, 1))]


def test_a_failure_is_retried_then_given_up() -> None:
    state = running(1, retries=1, max_in_flight=1)
    state.handle(TaskStarted(0, 1, "w1"))
    failure = TaskFailed(0, 1, "boom", "Traceback...")
    assert state.handle(failure) == [UpdateTask(0, "pending", 1, failure), Submit((0,), (2,))]
    assert is_ignored(state.handle(failure))  # the same failure reported again
    assert is_ignored(state.handle(TaskStarted(0, 1, "w2")))  # a late report about the first run
    state.handle(TaskStarted(0, 2, "w2"))
    state.handle(PlanningFinished())
    again = TaskFailed(0, 2, "boom again")
    assert state.handle(again) == [
        UpdateTask(0, "failed", 2, again),
        UpdateCampaign("failed", True),
        CampaignFinished("failed"),
    ]


def test_a_failure_before_the_start_report_counts_its_attempt() -> None:
    state = running(1, retries=1)
    failure = TaskFailed(0, 1, "could not unpickle")
    assert state.handle(failure)[0] == UpdateTask(0, "pending", 1, failure)


def test_a_failure_that_cannot_be_helped_is_not_retried() -> None:
    state = running(1, retries=5)
    failure = TaskFailed(0, 1, "bad input", retryable=False)
    assert state.handle(failure) == [UpdateTask(0, "failed", 1, failure)]


# Workers, cancel, retry, resume


def test_a_lost_worker_sends_its_tasks_back_counting_the_attempt() -> None:
    state = running(3, retries=1, max_in_flight=2)
    state.handle(TaskStarted(0, 1, "w1"))
    state.handle(TaskStarted(1, 2, "w2"))
    lost = state.handle(WorkerLost("w1"))
    assert lost[0] == CancelTasks((0,))
    update = lost[1]
    assert isinstance(update, UpdateTask) and (update.task, update.status, update.attempts) == (0, "pending", 1)
    assert lost[2:] == [Submit((0,), (3,))]
    state.handle(TaskStarted(0, 3, "w3"))
    again = state.handle(WorkerLost("w3"))
    assert isinstance(again[1], UpdateTask) and again[1].status == "failed"
    assert again[1].error is not None and "w3" in again[1].error
    assert is_ignored(state.handle(WorkerLost("w9")))
    assert state.task_status(1) == "running"


def test_cancel_cancels_everything_unfinished_and_ends_the_campaign() -> None:
    state = running(5, max_in_flight=2)
    state.handle(TaskSucceeded(0, 1))  # 1 and 2 are now in flight
    actions = state.handle(CancelRequested())
    assert actions == [
        CancelTasks((1, 2)),
        UpdateTasks(("pending", "running"), "cancelled"),
        UpdateCampaign("cancelled", False),
        CampaignFinished("cancelled"),
    ]
    assert state.counts() == {"pending": 0, "running": 0, "done": 1, "failed": 0, "cancelled": 4}
    assert state.in_flight == 0
    for event in (TaskSucceeded(1, 2), CancelRequested(), RetryRequested(), Resumed(), TasksPlanned(5, 1)):
        assert is_ignored(state.handle(event))
    assert state.task_status(1) == "cancelled"


def test_a_queued_campaign_can_be_cancelled() -> None:
    state = CampaignState(retries=0, max_in_flight=1)
    state.handle(TasksPlanned(0, 2))
    assert state.handle(CancelRequested())[-1] == CampaignFinished("cancelled")
    assert is_ignored(state.handle(CampaignStarted()))


def test_retry_reruns_only_the_failed_tasks_with_fresh_attempts() -> None:
    state = running(3, retries=0, max_in_flight=3)
    state.handle(PlanningFinished())
    state.handle(TaskSucceeded(0, 1))
    state.handle(TaskFailed(1, 2, "boom"))
    assert state.handle(TaskFailed(2, 3, "boom"))[-1] == CampaignFinished("completed_with_failures")
    actions = state.handle(RetryRequested())
    assert actions == [
        UpdateTasks(("failed",), "pending", reset_attempts=True),
        UpdateCampaign("running", True),
        Submit((1, 2), (4, 5)),
    ]
    assert state.attempts(1) == 0 and state.task_status(0) == "done"
    assert is_ignored(state.handle(TaskFailed(1, 2, "boom")))  # the failure before the retry, reported again
    state.handle(TaskSucceeded(1, 4))
    assert state.handle(TaskSucceeded(2, 5))[-1] == CampaignFinished("completed")
    assert is_ignored(state.handle(RetryRequested()))


def test_resume_after_a_crash_puts_running_tasks_back_and_gives_their_attempt_back() -> None:
    rows: list[tuple[TaskStatus, int]] = [("done", 1), ("running", 2), ("pending", 0), ("failed", 3), ("running", 1)]
    state = CampaignState.restore(
        status="running", tasks=rows, retries=2, max_in_flight=2, follow=False, planning_finished=True
    )
    actions = state.handle(Resumed())
    assert actions == [
        CancelTasks((1, 4)),
        UpdateTask(1, "pending", 1, Resumed()),
        UpdateTask(4, "pending", 0, Resumed()),
        Submit((1, 2), (1, 2)),
    ]
    assert state.counts() == {"pending": 3, "running": 0, "done": 1, "failed": 1, "cancelled": 0}


def test_resume_of_a_campaign_not_running_is_ignored() -> None:
    assert is_ignored(CampaignState(retries=0, max_in_flight=1).handle(Resumed()))


# Standing campaigns, capacity, limits


def test_a_standing_campaign_stays_running_and_takes_new_tasks_until_cancelled() -> None:
    state = running(1, follow=True)
    state.handle(PlanningFinished())
    assert state.handle(TaskSucceeded(0, 1)) == [UpdateTask(0, "done", 1, TaskSucceeded(0, 1))]
    assert state.status == "running"
    assert state.handle(FollowNewGranules(1, 2)) == [AddTasks(1, 2), Submit((1, 2), (2, 3))]
    assert state.handle(CancelRequested())[-1] == CampaignFinished("cancelled")


def test_new_granules_for_a_campaign_that_does_not_follow_are_ignored() -> None:
    assert is_ignored(running(1).handle(FollowNewGranules(1, 1)))


def test_more_capacity_submits_more() -> None:
    state = running(5, max_in_flight=1)
    assert submitted(state.handle(CapacityChanged(3))) == [1, 2]


def test_bad_limits_are_a_bug() -> None:
    with pytest.raises(InternalError):
        CampaignState(retries=-1, max_in_flight=1)


def test_a_million_tasks_fit_in_a_few_megabytes_and_a_bounded_window() -> None:
    state = CampaignState(retries=2, max_in_flight=64)
    state.handle(TasksPlanned(0, 1_000_000))
    assert len(submitted(state.handle(CampaignStarted()))) == 64
    assert state.handle(TaskSucceeded(0, 1)) == [UpdateTask(0, "done", 1, TaskSucceeded(0, 1)), Submit((64,), (65,))]
    assert state._codes.__sizeof__() + state._attempts.__sizeof__() < 2_200_000


@pytest.mark.parametrize(
    ("done", "failed", "cancelled", "expected"),
    [
        (3, 0, False, "completed"),
        (0, 0, False, "completed"),
        (2, 1, False, "completed_with_failures"),
        (0, 3, False, "failed"),
        (2, 1, True, "cancelled"),
    ],
)
def test_final_status_rules(done: int, failed: int, cancelled: bool, expected: CampaignStatus) -> None:
    assert final_status(done=done, failed=failed, cancelled=cancelled) == expected


# Seeded random sequences: duplicates, lost workers, crashes, cancels and retries, checked against invariants.


@dataclass
class Runner:
    """A stand-in for the runner: a table written only from actions, and the futures the cluster holds."""

    state: CampaignState
    rows: list[tuple[TaskStatus, int]] = field(default_factory=list)
    status: CampaignStatus = "queued"
    planning_finished: bool = False
    futures: dict[int, tuple[int, str | None]] = field(default_factory=dict)  # task -> (run, worker)
    ever_done: set[int] = field(default_factory=set)
    history: list[Event] = field(default_factory=list)
    cancelled: bool = False

    def deliver(self, event: Event) -> None:
        replayed = isinstance(event, TaskStarted | TaskSucceeded | TaskFailed) and event in self.history
        actions = self.state.handle(event)
        assert not replayed or is_ignored(actions), f"a task report delivered twice counted twice: {actions}"
        self.history.append(event)
        for action in actions:
            self.carry_out(action)
        self.check(actions)

    def carry_out(self, action: Action) -> None:
        if isinstance(action, Submit):
            for task, run in zip(action.tasks, action.runs, strict=True):
                assert task not in self.futures, "submitted twice"
                assert task not in self.ever_done, "a done task was submitted again"
                self.futures[task] = (run, None)
        elif isinstance(action, AddTasks):
            assert action.first == len(self.rows)
            self.rows.extend([("pending", 0)] * action.count)
        elif isinstance(action, CancelTasks):
            for task in action.tasks:
                self.futures.pop(task, None)
        elif isinstance(action, UpdateTask):
            self.rows[action.task] = (action.status, action.attempts)
            if action.status == "done":
                self.ever_done.add(action.task)
        elif isinstance(action, UpdateTasks):
            self.rows = [
                (action.status, 0 if action.reset_attempts else attempts)
                if status in action.where
                else (status, attempts)
                for status, attempts in self.rows
            ]
        elif isinstance(action, UpdateCampaign):
            self.status, self.planning_finished = action.status, action.planning_finished
        elif isinstance(action, CampaignFinished):
            self.cancelled |= action.status == "cancelled"

    def check(self, actions: list[Action]) -> None:
        state = self.state
        assert sum(state.counts().values()) == state.total == len(self.rows)
        assert state.in_flight == len(self.futures)
        if of_type(actions, Submit):  # the window may only be over the limit after the limit was lowered
            assert state.in_flight <= state.max_in_flight
        assert (self.status, self.planning_finished) == (state.status, state.planning_finished)
        assert self.rows == [(state.task_status(task), state.attempts(task)) for task in range(state.total)]
        if state.status not in ("queued", "running", "cancelled"):
            self.futures.clear()  # the runner drops whatever is left once the campaign is over

    def crash_and_resume(self) -> None:
        """kill -9: the futures die with the server; the machine is rebuilt from the table."""
        old = self.state
        self.futures.clear()
        # Reports queued in the dead process die with it; requests from users (in the database) may come again.
        self.history = [
            event for event in self.history if not isinstance(event, TaskStarted | TaskSucceeded | TaskFailed)
        ]
        self.state = CampaignState.restore(
            status=self.status,
            tasks=list(self.rows),
            retries=old.retries,
            max_in_flight=old.max_in_flight,
            follow=old.follow,
            planning_finished=self.planning_finished,
        )
        self.deliver(Resumed())


def random_report(runner: Runner, rng: random.Random, poisoned: set[int]) -> Event | None:
    """A report about one of the futures the cluster holds."""
    if not runner.futures:
        return None
    task = rng.choice(sorted(runner.futures))
    run, worker = runner.futures[task]
    if worker is None and rng.random() < 0.7:
        worker = rng.choice(["w1", "w2", "w3"])
        runner.futures[task] = (run, worker)
        return TaskStarted(task, run, worker)
    runner.futures.pop(task)
    if task in poisoned or rng.random() < 0.25:
        return TaskFailed(task, run, "boom", retryable=rng.random() < 0.9)
    return TaskSucceeded(task, run, (f"out-{task}.nc",))


def random_event(runner: Runner, rng: random.Random, poisoned: set[int]) -> Event | None:
    roll = rng.random()
    if roll < 0.08 and not runner.state.planning_finished:
        return TasksPlanned(max(0, len(runner.rows) - rng.randint(0, 2)), rng.randint(0, 6))
    if roll < 0.10:
        return PlanningFinished()
    if roll < 0.15 and runner.history:
        return rng.choice(runner.history)  # a duplicate, delivered late
    if roll < 0.19:
        lost = rng.choice(["w1", "w2", "w3"])
        runner.futures = {task: value for task, value in runner.futures.items() if value[1] != lost}
        return WorkerLost(lost)
    if roll < 0.21:
        return RetryRequested()
    if roll < 0.215:
        return CancelRequested()
    if roll < 0.23:
        return FollowNewGranules(len(runner.rows), rng.randint(1, 3))  # ignored unless the campaign follows
    if roll < 0.24:
        return CapacityChanged(rng.randint(1, 6))
    return random_report(runner, rng, poisoned)


def drive_to_the_end(runner: Runner, rng: random.Random, poisoned: set[int]) -> None:
    if not runner.state.planning_finished:
        runner.deliver(PlanningFinished())
    for _ in range(10_000):
        if runner.state.status not in ("queued", "running"):
            return
        if runner.state.status == "queued":
            runner.deliver(CampaignStarted())
            continue
        counts = runner.state.counts()
        if runner.state.follow and counts["pending"] == counts["running"] == 0:
            runner.deliver(CancelRequested())  # a standing campaign runs until cancelled
            continue
        event = random_report(runner, rng, poisoned)
        assert event is not None, f"the campaign is stuck: {runner.state.counts()}, in flight {runner.state.in_flight}"
        runner.deliver(event)
    raise AssertionError("the campaign never finished")


@pytest.mark.parametrize("seed", range(500))
def test_random_event_sequences_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    state = CampaignState(retries=rng.randint(0, 3), max_in_flight=rng.randint(1, 5), follow=rng.random() < 0.2)
    runner = Runner(state)
    poisoned = set(rng.sample(range(40), rng.randint(0, 4)))
    for _ in range(rng.randint(0, 150)):
        if rng.random() < 0.03:
            runner.crash_and_resume()
        elif runner.state.status == "queued" and rng.random() < 0.2:
            runner.deliver(CampaignStarted())
        elif (event := random_event(runner, rng, poisoned)) is not None:
            runner.deliver(event)
    drive_to_the_end(runner, rng, poisoned)

    counts = runner.state.counts()
    assert counts["pending"] == counts["running"] == 0, "every task ends in a final state"
    if runner.cancelled or runner.state.follow:
        assert runner.state.status == "cancelled"
    else:
        assert counts["cancelled"] == 0
        expected = final_status(done=counts["done"], failed=counts["failed"], cancelled=False)
        assert runner.state.status == expected
        assert all(runner.state.task_status(task) == "failed" for task in poisoned if task < runner.state.total)
