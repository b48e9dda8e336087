"""Planning: tasks per granule or per period, secondary inputs matched by time, stable keys, bounded memory."""

from __future__ import annotations

import datetime as dt
import sys
import tracemalloc
from collections.abc import Iterator

import pytest

from nephelae.campaigns.planning import GranuleRef, GroupBy, PlannedTask, PlanStats, plan_tasks, task_key
from nephelae.errors import InternalError

T0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def ref(number: int, start_hours: float | None, hours: float = 1, dataset: str = "sst") -> GranuleRef:
    if start_hours is None:
        return GranuleRef(number, f"{dataset}/{number}.nc", None, None, dataset)
    start = T0 + start_hours * HOUR
    return GranuleRef(number, f"{dataset}/{number}.nc", start, start + hours * HOUR, dataset, 1000, 1)


def plan(
    inputs: dict[str, list[GranuleRef]], group_by: GroupBy = "granule", stats: PlanStats | None = None
) -> list[PlannedTask]:
    return list(plan_tasks(inputs, group_by=group_by, processor="builtin:p", parameters={"k": 1}, stats=stats))


def numbers(granules: tuple[GranuleRef, ...]) -> list[int]:
    return [granule.id for granule in granules]


def test_one_task_per_primary_granule_with_distinct_stable_keys() -> None:
    granules = [ref(number, number) for number in range(5)]
    tasks = plan({"sst": granules})
    assert [task.label for task in tasks] == [granule.path for granule in granules]
    assert [numbers(task.inputs["sst"]) for task in tasks] == [[0], [1], [2], [3], [4]]
    assert len({task.key for task in tasks}) == 5
    assert [task.key for task in plan({"sst": granules})] == [task.key for task in tasks]


def test_the_key_follows_inputs_processor_and_parameters_but_not_their_order() -> None:
    a, b = ref(1, 0), ref(2, 1)
    key = task_key({"sst": [a, b]}, processor="p@1", parameters={"x": 1, "y": 2})
    assert task_key({"sst": [b, a]}, processor="p@1", parameters={"y": 2, "x": 1}) == key
    assert task_key({"sst": [a, b]}, processor="p@2", parameters={"x": 1, "y": 2}) != key
    assert task_key({"sst": [a, b]}, processor="p@1", parameters={"x": 2, "y": 2}) != key
    assert task_key({"sst": [a]}, processor="p@1", parameters={"x": 1, "y": 2}) != key
    rewritten = GranuleRef(a.id, a.path, a.time_start, a.time_end, a.dataset, a.size, 2)
    assert task_key({"sst": [rewritten, b]}, processor="p@1", parameters={"x": 1, "y": 2}) != key
    assert task_key({"wind": [a, b]}, processor="p@1", parameters={"x": 1, "y": 2}) != key


def test_secondary_inputs_are_matched_by_overlapping_time() -> None:
    primary = [ref(0, 0, 6), ref(1, 6, 6), ref(2, 30, 6), ref(3, 31, 1)]
    winds = [ref(10, -1, 2, "wind"), ref(11, 5, 2, "wind"), ref(12, 12.5, 1, "wind"), ref(13, 31.5, 1, "wind")]
    stats = PlanStats()
    tasks = plan({"sst": primary, "wind": winds}, stats=stats)
    assert [numbers(task.inputs["wind"]) for task in tasks] == [[10, 11], [11], [13], [13]]
    assert stats == PlanStats(tasks=4, granules=9, unmatched=0, untimed=0)


def test_touching_intervals_do_not_match_but_instants_on_the_edge_do() -> None:
    daily = [ref(0, 0, 24), ref(1, 24, 24)]
    winds = [ref(10, 0, 24, "wind"), ref(11, 24, 0, "wind"), ref(12, 24, 24, "wind")]
    tasks = plan({"sst": daily, "wind": winds})
    assert [numbers(task.inputs["wind"]) for task in tasks] == [[10, 11], [11, 12]]


def test_a_primary_granule_without_a_match_still_gets_its_task() -> None:
    stats = PlanStats()
    tasks = plan({"sst": [ref(0, 0), ref(1, 10)], "wind": [ref(10, 10, 1, "wind")]}, stats=stats)
    assert [task.inputs["wind"] for task in tasks] == [(), (ref(10, 10, 1, "wind"),)]
    assert stats.unmatched == 1


def test_granules_without_time_cannot_be_matched() -> None:
    stats = PlanStats()
    tasks = plan(
        {"sst": [ref(0, None), ref(1, 0)], "wind": [ref(10, None, dataset="wind"), ref(11, 0, 1, "wind")]}, stats=stats
    )
    assert [(numbers(task.inputs["sst"]), numbers(task.inputs["wind"])) for task in tasks] == [([0], []), ([1], [11])]
    assert stats.untimed == 1 and stats.unmatched == 1


def test_day_groups_hold_every_input_starting_that_utc_day() -> None:
    primary = [ref(0, 1), ref(1, 20), ref(2, 25), ref(3, 73)]
    winds = [ref(10, 2, 1, "wind"), ref(11, 50, 1, "wind"), ref(12, 74, 1, "wind")]
    tasks = plan({"sst": primary, "wind": winds}, "day")
    assert [task.label for task in tasks] == ["2020-01-01", "2020-01-02", "2020-01-04"]  # no primary on the 3rd
    assert [numbers(task.inputs["sst"]) for task in tasks] == [[0, 1], [2], [3]]
    assert [numbers(task.inputs["wind"]) for task in tasks] == [[10], [], [12]]


def test_month_groups_use_utc() -> None:
    late = dt.datetime(2020, 2, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # still January in UTC
    granules = [ref(0, 0), GranuleRef(1, "late.nc", late, late + HOUR), ref(2, 24 * 40)]
    tasks = plan({"sst": granules}, "month")
    assert [(task.label, numbers(task.inputs["sst"])) for task in tasks] == [("2020-01", [0, 1]), ("2020-02", [2])]


@pytest.mark.parametrize("group_by", ["day", "granule"])
def test_inputs_out_of_time_order_are_a_bug_of_the_caller(group_by: GroupBy) -> None:
    shuffled = [ref(0, 48), ref(1, 0)]
    with pytest.raises(InternalError, match="not in time order"):
        plan({"sst": [ref(5, 0, 100)], "wind": shuffled} if group_by == "granule" else {"sst": shuffled}, group_by)


def test_a_plan_needs_an_input() -> None:
    with pytest.raises(InternalError):
        plan({})


def synthetic(count: int, per_day: int, dataset: str = "sst") -> Iterator[GranuleRef]:
    """`count` granules following one another, `per_day` a day."""
    span = dt.timedelta(days=1) / per_day
    for number in range(count):
        start = T0 + number * span
        yield GranuleRef(number, f"{dataset}/{number}.nc", start, start + span, dataset, 1000, number)


def test_a_million_granules_are_planned_in_bounded_memory() -> None:
    """Counts live allocations (all sizes) as tasks stream out; tracemalloc would make this test ten times slower."""
    inputs = {"sst": synthetic(1_000_000, 500), "ice": synthetic(2_000, 1, "ice")}
    tasks = plan_tasks(inputs, group_by="granule", processor="builtin:p", parameters={})
    baseline, highest, planned = sys.getallocatedblocks(), 0, 0
    for task in tasks:
        planned += 1
        assert len(task.inputs["ice"]) == 1  # the daily ice granule of its day
        if planned % 1000 == 0:
            highest = max(highest, sys.getallocatedblocks() - baseline)
    assert planned == 1_000_000
    assert highest < 20_000  # blocks: what 20 tasks would leave behind at most, not a million


def test_month_groups_are_emitted_as_they_close() -> None:
    """Peak memory follows the largest group (about 3,000 granules here), not the archive."""
    inputs = {"sst": synthetic(100_000, 100), "wind": synthetic(50_000, 50, "wind")}
    tracemalloc.start()
    try:
        count = sum(1 for _ in plan_tasks(inputs, group_by="month", processor="p", parameters={}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 33
    assert peak < 20 * 1024 * 1024
