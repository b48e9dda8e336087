"""Loose user inputs (bbox, datetime, cursor) normalised once, at the boundary, into exact values."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from nephelae.errors import InvalidInput

OPEN = ("", "..")


@dataclass(frozen=True)
class BBox:
    """West, south, east, north in degrees; west > east crosses the antimeridian (as in STAC)."""

    west: float
    south: float
    east: float
    north: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.west > self.east

    def parts(self) -> list[tuple[float, float, float, float]]:
        """The box as one or two boxes that do not cross the antimeridian."""
        if not self.crosses_antimeridian:
            return [(self.west, self.south, self.east, self.north)]
        return [(self.west, self.south, 180.0, self.north), (-180.0, self.south, self.east, self.north)]


@dataclass(frozen=True)
class Interval:
    """A closed time interval; None for an open end."""

    start: dt.datetime | None
    end: dt.datetime | None


def parse_bbox(value: str | Sequence[float] | None) -> BBox | None:
    """`W,S,E,N` (text or four numbers) into a checked box; longitudes beyond +-180 are wrapped."""
    if value is None or value == "":
        return None
    try:
        numbers = [float(part) for part in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        raise InvalidInput(f"bbox {value!r} is not four numbers W,S,E,N") from None
    if len(numbers) == 6:  # STAC allows 3-D boxes: W,S,zmin,E,N,zmax
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or any(number != number for number in numbers):
        raise InvalidInput(f"bbox {value!r} is not four numbers W,S,E,N")
    west, south, east, north = numbers
    if not (-90 <= south <= north <= 90):
        raise InvalidInput(f"bbox {value!r}: latitudes must satisfy -90 <= south <= north <= 90")
    if east - west >= 360:
        west, east = -180.0, 180.0
    return BBox(_wrap(west), south, _wrap(east), north)


def _wrap(longitude: float) -> float:
    if -180 <= longitude <= 180:
        return longitude
    return ((longitude + 180) % 360) - 180


def parse_datetime(text: str) -> dt.datetime:
    """An RFC 3339 instant (a date alone means its midnight UTC); naive times are taken as UTC."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise InvalidInput(f"{text!r} is not an RFC 3339 date-time such as 2020-01-31T12:00:00Z") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def parse_interval(value: str | None) -> Interval | None:
    """`INSTANT`, `START/END`, `../END`, `START/..`: an instant is the interval [instant, instant]."""
    if value is None or value.strip() in OPEN:
        return None
    parts = value.split("/")
    if len(parts) == 1:
        moment = parse_datetime(parts[0])
        return Interval(moment, moment)
    if len(parts) != 2 or (parts[0].strip() in OPEN and parts[1].strip() in OPEN):
        raise InvalidInput(f"datetime {value!r} is not an instant or an interval START/END (ends may be '..')")
    start = None if parts[0].strip() in OPEN else parse_datetime(parts[0])
    end = None if parts[1].strip() in OPEN else parse_datetime(parts[1])
    if start and end and start > end:
        raise InvalidInput(f"datetime {value!r}: the start is after the end")
    return Interval(start, end)


def encode_cursor(time_start: dt.datetime | None, granule_id: int) -> str:
    """An opaque token for 'after this granule' in (time_start, id) order."""
    payload = json.dumps([time_start.isoformat() if time_start else None, granule_id])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[dt.datetime | None, int] | None:
    if not cursor:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        start = dt.datetime.fromisoformat(raw[0]) if raw[0] else None
        return start, int(raw[1])
    except (ValueError, TypeError, IndexError, json.JSONDecodeError):
        raise InvalidInput("the paging cursor is damaged; start again from the first page") from None
