"""What an analysis is asked to do: one dataset, its variables, a box, a time interval and the operation's options.

Loose inputs (bbox text, RFC 3339 intervals) are normalised here once, with the catalog's parsers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nephelae.catalog.query import BBox, Interval, parse_bbox, parse_interval
from nephelae.errors import InvalidInput

Operation = Literal["subset", "timeseries", "climatology", "map"]
Period = Literal["month", "dayofyear"]
OPERATIONS: tuple[Operation, ...] = ("subset", "timeseries", "climatology", "map")
MAX_VARIABLES = 20
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class AnalysisRequest:
    """One analysis of one dataset; `bbox` and `time` None mean everything."""

    operation: Operation
    dataset: str
    variables: tuple[str, ...]
    bbox: BBox | None = None
    time: Interval | None = None
    period: Period = "month"
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The request as plain JSON values (written into the outputs' provenance)."""
        bbox = None if self.bbox is None else [self.bbox.west, self.bbox.south, self.bbox.east, self.bbox.north]
        described: dict[str, Any] = {
            "operation": self.operation,
            "dataset": self.dataset,
            "variables": list(self.variables),
            "bbox": bbox,
            "time": interval_text(self.time),
        }
        if self.operation == "climatology":
            described["period"] = self.period
        return described

    def as_json(self) -> str:
        return json.dumps(self.describe(), sort_keys=True)


def interval_text(interval: Interval | None) -> str | None:
    if interval is None:
        return None
    start = interval.start.isoformat() if interval.start else ".."
    end = interval.end.isoformat() if interval.end else ".."
    return f"{start}/{end}"


def _whole_days(time: str | None) -> str | None:
    """Dates mean whole days: a date alone is that day, a date as the end of an interval includes that day (a daily
    granule's time step is often at noon, so `2020-01-01/2020-01-31` must reach 31 January, 12:00)."""
    if time is None:
        return None
    text = time.strip()
    if DATE.fullmatch(text):
        return f"{text}T00:00:00Z/{text}T23:59:59.999999Z"
    start, slash, end = text.partition("/")
    if slash and DATE.fullmatch(end.strip()):
        return f"{start}/{end.strip()}T23:59:59.999999Z"
    return text


def build_request(
    operation: str,
    dataset: str,
    variables: Sequence[str],
    *,
    bbox: str | Sequence[float] | None = None,
    time: str | None = None,
    period: str = "month",
) -> AnalysisRequest:
    """A checked request from loose inputs: a malformed box, interval, variable list or period is `InvalidInput`."""
    if operation not in OPERATIONS:
        raise InvalidInput(f"unknown analysis {operation!r}; choose one of {', '.join(OPERATIONS)}")
    names = tuple(dict.fromkeys(name.strip() for name in variables if name.strip()))
    if not names:
        raise InvalidInput("name at least one variable (e.g. analysed_sst); `nephelae datasets show` lists them")
    if len(names) > MAX_VARIABLES:
        raise InvalidInput(f"at most {MAX_VARIABLES} variables per analysis, not {len(names)}")
    if period not in ("month", "dayofyear"):
        raise InvalidInput(f"period {period!r} is not 'month' or 'dayofyear'")
    return AnalysisRequest(
        operation=operation,  # checked against OPERATIONS above
        dataset=dataset,
        variables=names,
        bbox=parse_bbox(bbox),
        time=parse_interval(_whole_days(time)),
        period=period,  # type: ignore[arg-type]  # checked above
    )
