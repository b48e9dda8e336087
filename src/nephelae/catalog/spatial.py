"""The spatio-temporal index of the granules, seen from the queries: candidate granule ids for a box in time and space.

Migration 0004 creates the index and the triggers that keep it: on SQLite an R*Tree `granule_rtree(id, d0, d1, t0,
t1, x0, x1, y0, y1)` whose id is `granule_id * 2 + part`, on PostgreSQL a table `granule_boxes(granule_id, part, box)`
of 4-D `cube` boxes (dataset key, hours since 1970, longitude, latitude) with a GiST index. A granule crossing the
antimeridian has two parts. Only readable granules with a time coverage are in it.

The boxes are padded a little and the R*Tree rounds float32 outward, so every query here is widened by more than
both: candidates are a superset, which search re-checks on the exact columns of `granules`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Float, ScalarSelect, Select, column, func, literal, select, table, union_all
from sqlalchemy.dialects.postgresql import array

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TIME_MARGIN = 0.25  # hours: > the 0.01 h padding + the float32 step (1/32 h to 2029, 1/16 to 2089, 1/8 to 2209)
DEGREE_MARGIN = 0.01  # degrees: > the 0.001 degree padding + the float32 step (2e-5 at 180)
KEY_MARGIN = 0.1  # keys are integers padded by 0.25: any margin below 0.75 selects exactly one

_datasets = table("granule_box_datasets", column("key"), column("dataset_id"))
_rtree = table("granule_rtree", *(column(name) for name in ("id", "d0", "d1", "t0", "t1", "x0", "x1", "y0", "y1")))
_boxes = table("granule_boxes", column("granule_id"), column("box"))

Part = tuple[float, float, float, float]  # west, south, east, north, not crossing the antimeridian


@dataclass(frozen=True)
class TimeRange:
    """Candidates must start in [start_min, start_max] and end at or after end_min (None: unbounded)."""

    start_min: dt.datetime | None = None
    start_max: dt.datetime | None = None
    end_min: dt.datetime | None = None


def hours(moment: dt.datetime) -> float:
    """Hours since 1970-01-01T00:00Z: the time axis of the index."""
    return (moment - EPOCH).total_seconds() / 3600.0


def dataset_key(dataset_id: str) -> ScalarSelect[int]:
    """The dataset's key in the index; NULL when no granule of the dataset was ever indexed."""
    return select(_datasets.c.key).where(_datasets.c.dataset_id == dataset_id).scalar_subquery()


def candidate_ids(dialect: str, key: int, parts: Sequence[Part], times: TimeRange) -> Select[int]:
    """Ids of the granules of dataset `key` whose box may meet one of `parts` within `times` (a superset)."""
    build = _postgresql_candidates if dialect == "postgresql" else _sqlite_candidates
    selects = [build(key, part, times) for part in parts]
    if len(selects) == 1:
        return selects[0]
    union = union_all(*selects).subquery()
    return select(union.c.granule_id)


def _sqlite_candidates(key: int, part: Part, times: TimeRange) -> Select[int]:
    west, south, east, north = part
    r = _rtree.c
    conditions: list[ColumnElement[bool]] = [
        r.d0 <= key + KEY_MARGIN,
        r.d1 >= key - KEY_MARGIN,
        r.x0 <= east + DEGREE_MARGIN,
        r.x1 >= west - DEGREE_MARGIN,
        r.y0 <= north + DEGREE_MARGIN,
        r.y1 >= south - DEGREE_MARGIN,
    ]
    if times.start_min is not None:
        conditions.append(r.t0 >= hours(times.start_min) - TIME_MARGIN)
    if times.start_max is not None:
        conditions.append(r.t0 <= hours(times.start_max) + TIME_MARGIN)
    if times.end_min is not None:
        conditions.append(r.t1 >= hours(times.end_min) - TIME_MARGIN)
    granule_id = r.id.op(">>")(literal(1)).label("granule_id")
    return select(granule_id).where(*conditions)


def _postgresql_candidates(key: int, part: Part, times: TimeRange) -> Select[int]:
    """`box && query` on the GiST index; a lower bound on the start is a filter on the candidates (cube has no
    operator for it), cheap because only granules spanning that instant pass the overlap test but not the filter."""
    west, south, east, north = part
    # Boxes overlapping [time_low, time_high] start before time_high and end after time_low: a start after
    # start_min implies an end after it too.
    lowest = [times.start_min, times.end_min]
    time_low = max((hours(moment) for moment in lowest if moment is not None), default=-1e9)
    time_high = hours(times.start_max) if times.start_max is not None else 1e9
    low = [key - KEY_MARGIN, time_low - TIME_MARGIN, west - DEGREE_MARGIN, south - DEGREE_MARGIN]
    high = [key + KEY_MARGIN, time_high + TIME_MARGIN, east + DEGREE_MARGIN, north + DEGREE_MARGIN]
    query = func.cube(array(low, type_=Float), array(high, type_=Float))
    conditions: list[ColumnElement[bool]] = [_boxes.c.box.op("&&")(query)]
    if times.start_min is not None:
        conditions.append(func.cube_ll_coord(_boxes.c.box, 2) >= hours(times.start_min) - TIME_MARGIN)
    if times.end_min is not None:
        conditions.append(func.cube_ur_coord(_boxes.c.box, 2) >= hours(times.end_min) - TIME_MARGIN)
    return select(_boxes.c.granule_id.label("granule_id")).where(*conditions)
