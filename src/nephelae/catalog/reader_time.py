"""The time coverage of a granule, from its CF time coordinate, its global attributes or its file name.

Precedence (first source that gives a usable time wins):

- Gridded products: the CF time coordinate, widened to its bounds (`bounds`/`climatology`) when it has them, then
  the global attributes, then the file name. The time coordinate is what the data are stamped with and what users
  select on; the attributes mean different things from one producer to the next (IMOS GSLA: the two-week input
  window of a daily map; MUR: 21:00 the day before to 21:00; GOS: 19:00 to 07:00), and would put a daily map on
  the wrong day.
- Swaths and along-track files: the global attributes, then the time coordinate, then the file name. There the
  attributes are the acquisition span, while the time variable is often a single reference time (GHRSST L2P: the
  pixels are offsets `sst_dtime` from it, a 2-D array that we do not read).

Attributes are taken as pairs, in this order: ACDD `time_coverage_start/end`, `start_time/stop_time` (or
`end_time`, joined with `start_date/stop_date` when they hold only a clock time, as in ASCAT),
`first_meas_time/last_meas_time` (Jason), `first_measurement_time/last_measurement_time` (Sentinel-6),
`REV_START_TIME/REV_STOP_TIME` (SMAP, day-of-year dates), `begin_time/end_time` (RSS), then `start_date/stop_date`.
The file name fallback is the first `YYYYMMDD` or `YYYYMMDDThhmmss` token in it, as an instant.
All times are timezone-aware UTC; naive values are taken as UTC.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import cftime
import numpy as np

from nephelae.catalog.reader_space import read_sample

Coverage = tuple[dt.datetime, dt.datetime]

ATTRIBUTE_PAIRS = (
    ("time_coverage_start", "time_coverage_end"),
    ("start_time", "stop_time"),
    ("start_time", "end_time"),
    ("first_meas_time", "last_meas_time"),
    ("first_measurement_time", "last_measurement_time"),
    ("REV_START_TIME", "REV_STOP_TIME"),
    ("begin_time", "end_time"),
    ("start_date", "stop_date"),
)
DATE_COMPANIONS = {"start_time": "start_date", "stop_time": "stop_date", "end_time": "stop_date"}
PLAUSIBLE_YEARS = range(1800, 2201)  # outside: a fill value or a broken unit, not a date
_TIME_UNITS = re.compile(r"^\s*[a-zA-Z]+\s+since\s+\S", re.ASCII)
_DAY_OF_YEAR = re.compile(r"^(\d{4})-?(\d{3})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(\.\d+)?)?)?$")
_CLOCK_ONLY = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_NAME_STAMP = re.compile(r"(?<!\d)(\d{8})(?:T?(\d{6}))?(?!\d)")


def time_coverage(root: Any, groups: Sequence[Any], *, attributes_first: bool, filename: str) -> Coverage | None:
    """Start and end of the data, or None when neither the file nor its name says anything about time.

    `groups` are searched in order for the time coordinate (the group holding the lat/lon first).
    """
    sources: list[Callable[[], Coverage | None]] = [
        partial(coverage_from_variable, groups),
        partial(coverage_from_attributes, root),
    ]
    if attributes_first:
        sources.reverse()
    sources.append(partial(coverage_from_name, filename))
    for source in sources:
        coverage = source()
        if coverage is not None:
            return coverage
    return None


def coverage_from_variable(groups: Sequence[Any]) -> Coverage | None:
    """Extent of the CF time coordinate (and of its bounds); None when there is none or it holds no valid time."""
    variable = find_time_variable(groups)
    if variable is None:
        return None
    values = read_sample(variable)
    bounds = _bounds_variable(variable)
    if bounds is not None:
        values = np.concatenate([values.ravel(), read_sample(bounds).ravel()])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    units, calendar_name = str(variable.getncattr("units")), _attribute(variable, "calendar") or "standard"
    try:
        moments = cftime.num2date(
            [values.min(), values.max()], units, str(calendar_name).lower(), only_use_cftime_datetimes=False
        )
    except (ValueError, OverflowError, TypeError):  # an undecodable unit or calendar: try the next source
        return None
    start, end = (_as_utc(moment) for moment in moments)
    return (start, end) if start is not None and end is not None else None


def find_time_variable(groups: Sequence[Any]) -> Any | None:
    """The CF time coordinate: units `<unit> since <date>` and standard_name time, axis T or the name time.

    Among several (Jason: time and time_20hz; Sentinel-6: time and time_tai), a coordinate variable (named like its
    only dimension) first, then one named `time`, then the one with the fewest dimensions.
    """
    for group in groups:
        candidates = [variable for variable in group.variables.values() if _is_time(variable)]
        if candidates:
            return min(candidates, key=_time_rank)
    return None


def _is_time(variable: Any) -> bool:
    units = _attribute(variable, "units")
    if not isinstance(units, str) or not _TIME_UNITS.match(units):
        return False
    named = variable.name.lower() == "time"
    return bool(named or _attribute(variable, "standard_name") == "time" or _attribute(variable, "axis") == "T")


def _time_rank(variable: Any) -> tuple[bool, bool, int]:
    coordinate = variable.dimensions == (variable.name,)
    return (not coordinate, variable.name.lower() != "time", len(variable.dimensions))


def _bounds_variable(variable: Any) -> Any | None:
    for key in ("bounds", "climatology"):
        name = _attribute(variable, key)
        if isinstance(name, str) and name in variable.group().variables:
            return variable.group().variables[name]
    return None


def coverage_from_attributes(root: Any) -> Coverage | None:
    """The first pair of global attributes (see the module docstring) whose start parses; a missing or unparsable
    end makes an instant."""
    attributes = {name: root.getncattr(name) for name in root.ncattrs()}
    for start_key, end_key in ATTRIBUTE_PAIRS:
        start = _attribute_time(attributes, start_key)
        if start is None:
            continue
        end = _attribute_time(attributes, end_key) or start
        return (start, end) if start <= end else (end, start)
    return None


def _attribute_time(attributes: dict[str, Any], key: str) -> dt.datetime | None:
    text = attributes.get(key)
    if not isinstance(text, str):
        return None
    text = text.strip()
    date = attributes.get(DATE_COMPANIONS.get(key, ""))
    if _CLOCK_ONLY.match(text) and isinstance(date, str):
        text = f"{date.strip()}T{text}"
    return parse_time_text(text)


def parse_time_text(text: str) -> dt.datetime | None:
    """A date-time as written in the attributes of real files, or None.

    Seen: `20170605T000000Z`, `2015-07-02 08:42:00`, `2019-02-23T00:00:00Z`, `2002-01-15 06:07:06.818984`,
    `2021-04-03T00:40:56.526918Z`, day-of-year `2015-090T16:31:44.000`, and a trailing `UTC`.
    """
    text = re.sub(r"\s*(UTC|GMT)$", "", text.strip(), flags=re.IGNORECASE)
    match = _DAY_OF_YEAR.match(text)
    try:
        if match:
            return _day_of_year(match)
        return _as_utc(dt.datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        return None


def _day_of_year(match: re.Match[str]) -> dt.datetime | None:
    year, day, hour, minute, second, fraction = match.groups()
    moment = dt.datetime(int(year), 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=int(day) - 1)
    clock = dt.timedelta(hours=int(hour or 0), minutes=int(minute or 0), seconds=int(second or 0))
    return _as_utc(moment + clock + dt.timedelta(seconds=float(fraction or 0)))


def coverage_from_name(filename: str) -> Coverage | None:
    """The instant of the first date stamp in a file name (`...20160515_...`, `20170605120000-UKMO...`)."""
    match = _NAME_STAMP.search(filename)
    if match is None:
        return None
    try:
        moment = dt.datetime.strptime(match.group(1) + (match.group(2) or "000000"), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    start = _as_utc(moment)
    return (start, start) if start is not None else None


def _as_utc(moment: Any) -> dt.datetime | None:
    """A plain UTC datetime from a datetime or a cftime date, or None outside the plausible years. Model calendars
    are mapped field by field, the day clamped to the month (30 February of a 360-day calendar: 28 or 29)."""
    if moment.year not in PLAUSIBLE_YEARS:
        return None
    if getattr(moment, "tzinfo", None) is not None:
        moment = moment.astimezone(dt.UTC)
    day = min(moment.day, calendar.monthrange(moment.year, moment.month)[1])
    clock = (moment.hour, moment.minute, moment.second, moment.microsecond)
    return dt.datetime(moment.year, moment.month, day, *clock, tzinfo=dt.UTC)


def _attribute(variable: Any, name: str) -> Any:
    return variable.getncattr(name) if name in variable.ncattrs() else None
