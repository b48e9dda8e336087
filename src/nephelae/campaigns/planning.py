"""Planning: the granules of a campaign's inputs cut into tasks, streamed, pure.

The first input is the primary one: it drives the tasks; the others (secondary) are matched to it by time.

- `group_by: granule`: one task per primary granule. Each secondary input contributes every granule whose time interval
  overlaps the primary granule's; intervals that only touch (a daily file ending at the midnight the next one starts)
  do not overlap, unless one of them is an instant. When a secondary input matches nothing, the task is still made,
  with an empty tuple for that alias: the processor decides what a missing companion means, and no primary granule is
  silently left out (`PlanStats.unmatched` counts such tasks, for the campaign's summary).
- `group_by: day | month`: one task per UTC day or month in which the primary input has granules, holding every
  granule of every input that starts in that period (a granule belongs to the period of its `time_start`).

Inputs are iterators and tasks come out one at a time, so a million granules are planned in bounded memory: a
secondary input only keeps the granules that may still overlap a later primary granule, and a day or month group is
emitted as soon as the next one starts. For that, every input whose order matters (all of them, except a lone primary
grouped by granule) must come in `time_start` order, as the catalog's (dataset, time_start, id) index gives them;
an input out of order is a bug of the caller and raises `InternalError`. Granules without a time cannot be grouped or
matched: they are skipped (and counted in `PlanStats.untimed`), except a primary granule grouped by granule, which
still gets its task.

Each task has a deterministic `key`, a SHA-256 of its input granules (dataset, path, size and mtime when known), the
processor's identity (with its version or file hash) and the canonical JSON of the parameters: the engine writes one
output per key, so a rerun or a resume skips the keys already done.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from nephelae.errors import InternalError

GroupBy = Literal["granule", "day", "month"]
PERIOD_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m"}


@dataclass(frozen=True, slots=True)
class GranuleRef:
    """What planning needs of a granule: which file it is and when it is."""

    id: int
    path: str
    time_start: dt.datetime | None
    time_end: dt.datetime | None
    dataset: str = ""
    size: int | None = None
    mtime_ns: int | None = None

    @property
    def end(self) -> dt.datetime | None:
        """The end of the granule's interval (its start when it is an instant)."""
        return self.time_end or self.time_start


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """One unit of work: its input granules by alias, and the key of its output."""

    key: str
    label: str  # the primary granule's path, or the UTC period (2020-01-31, 2020-01)
    inputs: dict[str, tuple[GranuleRef, ...]]


@dataclass
class PlanStats:
    """What planning saw, filled in as the tasks stream out."""

    tasks: int = 0
    granules: int = 0  # input granules put into tasks (a secondary granule matched twice counts twice)
    unmatched: int = 0  # tasks in which some secondary input has no granule
    untimed: int = 0  # granules skipped because they have no time


def task_key(inputs: Mapping[str, Sequence[GranuleRef]], *, processor: str, parameters: Mapping[str, Any]) -> str:
    """The output key of a task: the same inputs, processor and parameters always give the same key."""
    return _KeyMaker(processor, parameters)(inputs)


class _KeyMaker:
    """`task_key` for many tasks of one campaign: the processor and parameters are hashed once."""

    def __init__(self, processor: str, parameters: Mapping[str, Any]) -> None:
        head = json.dumps(
            {"processor": processor, "parameters": parameters},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        self._head = hashlib.sha256(head.encode() + b"\x00")

    def __call__(self, inputs: Mapping[str, Sequence[GranuleRef]]) -> str:
        digest = self._head.copy()
        for alias in sorted(inputs):
            granules = inputs[alias]
            ordered = sorted(granules, key=_file_order) if len(granules) > 1 else granules
            # NUL never occurs in a path or a dataset id, so these records cannot be confused with one another.
            files = "".join(f"{item.dataset}\x00{item.path}\x00{item.size}\x00{item.mtime_ns}\x01" for item in ordered)
            digest.update(f"\x02{alias}\x02{files}".encode())
        return digest.hexdigest()


def _file_order(granule: GranuleRef) -> tuple[str, str]:
    return granule.dataset, granule.path


def plan_tasks(
    inputs: Mapping[str, Iterable[GranuleRef]],
    *,
    group_by: GroupBy,
    processor: str,
    parameters: Mapping[str, Any],
    stats: PlanStats | None = None,
) -> Iterator[PlannedTask]:
    """The tasks of a campaign, one at a time; `inputs` maps each alias (primary first) to its granules."""
    if not inputs:
        raise InternalError("a campaign plan needs at least one input")
    stats = stats if stats is not None else PlanStats()
    key = _KeyMaker(processor, parameters)
    groups = _by_granule(inputs, stats) if group_by == "granule" else _by_period(inputs, group_by, stats)
    for label, granules in groups:
        stats.tasks += 1
        stats.granules += sum(len(items) for items in granules.values())
        stats.unmatched += any(not items for items in granules.values())
        yield PlannedTask(key(granules), label, granules)


Group = tuple[str, dict[str, tuple[GranuleRef, ...]]]


def _by_granule(inputs: Mapping[str, Iterable[GranuleRef]], stats: PlanStats) -> Iterator[Group]:
    primary, *secondary = inputs
    windows = {alias: _Window(alias, inputs[alias], stats) for alias in secondary}
    granules = _in_time_order(primary, inputs[primary]) if windows else iter(inputs[primary])
    for granule in granules:
        matched = {alias: window.overlapping(granule) for alias, window in windows.items()}
        yield granule.path, {primary: (granule,), **matched}


class _Window:
    """The granules of a time-ordered secondary input that may still overlap the current or a later primary."""

    def __init__(self, alias: str, granules: Iterable[GranuleRef], stats: PlanStats) -> None:
        self._source = _in_time_order(alias, granules)
        self._stats = stats
        self._held: list[GranuleRef] = []
        self._next: GranuleRef | None = self._pull()

    def _pull(self) -> GranuleRef | None:
        for granule in self._source:
            if granule.time_start is not None:
                return granule
            self._stats.untimed += 1
        return None

    def overlapping(self, primary: GranuleRef) -> tuple[GranuleRef, ...]:
        """The held granules overlapping `primary`; primaries must come in `time_start` order."""
        start, end = primary.time_start, primary.end
        if start is None or end is None:
            return ()
        while self._next is not None and self._next.time_start is not None and self._next.time_start <= end:
            self._held.append(self._next)
            self._next = self._pull()
        # Later primaries start no earlier than this one: what ends before it can go.
        self._held = [granule for granule in self._held if granule.end is not None and granule.end >= start]
        return tuple(granule for granule in self._held if overlaps(granule, start, end))


def overlaps(granule: GranuleRef, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether a timed granule overlaps [start, end]: intervals as half-open, instants as closed."""
    granule_start, granule_end = granule.time_start, granule.end
    if granule_start is None or granule_end is None:
        return False
    if granule_start == granule_end or start == end:
        return granule_start <= end and start <= granule_end
    return granule_start < end and start < granule_end


def _by_period(inputs: Mapping[str, Iterable[GranuleRef]], group_by: GroupBy, stats: PlanStats) -> Iterator[Group]:
    aliases = list(inputs)
    streams = [
        _periods(alias, rank, inputs[alias], PERIOD_FORMATS[group_by], stats) for rank, alias in enumerate(aliases)
    ]
    for period, parts in itertools.groupby(heapq.merge(*streams), key=itemgetter(0)):
        found = {aliases[rank]: granules for _, rank, granules in parts}
        if aliases[0] in found:  # the primary drives: a period without primary granules is no task
            yield period, {alias: found.get(alias, ()) for alias in aliases}


def _periods(
    alias: str, rank: int, granules: Iterable[GranuleRef], pattern: str, stats: PlanStats
) -> Iterator[tuple[str, int, tuple[GranuleRef, ...]]]:
    """(period, rank, granules) for each period of one time-ordered input, in order."""
    timed = (granule for granule in _in_time_order(alias, granules) if _timed(granule, stats))
    for period, group in itertools.groupby(timed, key=lambda granule: _utc(granule.time_start).strftime(pattern)):
        yield period, rank, tuple(group)


def _timed(granule: GranuleRef, stats: PlanStats) -> bool:
    if granule.time_start is None:
        stats.untimed += 1
        return False
    return True


def _in_time_order(alias: str, granules: Iterable[GranuleRef]) -> Iterator[GranuleRef]:
    """The granules unchanged, checking that their (known) start times never go back."""
    latest: dt.datetime | None = None
    for granule in granules:
        if granule.time_start is not None:
            start = _utc(granule.time_start)
            if latest is not None and start < latest:
                raise InternalError(f"input {alias!r} is not in time order at granule {granule.path!r}")
            latest = start
        yield granule


def _utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        raise InternalError("a granule without time reached time grouping")
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
