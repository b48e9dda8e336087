"""The parameters of item search and item listing, normalised once into an `ItemQuery`.

STAC and OGC API Features are stricter than `/api/v1` in two ways, and this module applies them: date-times are
RFC 3339 with a time zone (no bare dates), and a bad parameter is a 400, never a 422. A `limit` above the maximum is
clamped (OGC API Features allows it), a `limit` below 1 is refused.

`intersects` is approximated by the bounding box of the geometry: items whose box meets that box are returned, even
where the geometry itself would miss them (a superset, never fewer items).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from nephelae.catalog.query import BBox, Interval, parse_bbox, parse_interval
from nephelae.errors import InvalidInput

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
MAX_IDS = 100
ITEM_PARAMETERS = frozenset({"bbox", "datetime", "limit", "token"})
SEARCH_PARAMETERS = ITEM_PARAMETERS | {"collections", "ids", "intersects"}

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_OPEN = ("", "..")
_GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


@dataclass(frozen=True)
class ItemQuery:
    """What to find: in which collections (none: every readable one), which ids, where, when, how many, from where."""

    collections: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    bbox: BBox | None = None
    interval: Interval | None = None
    limit: int = DEFAULT_LIMIT
    token: str | None = None


class SearchBody(BaseModel):
    """The JSON body of `POST /stac/search`. Unknown members (extensions we do not implement) are refused."""

    model_config = ConfigDict(extra="forbid")

    collections: list[str] | None = None
    ids: list[str] | None = None
    bbox: list[float] | None = None
    intersects: dict[str, Any] | None = None
    datetime: str | None = None
    limit: int | None = None
    token: str | None = None


def query_from_get(
    given: Iterable[str],
    allowed: frozenset[str],
    *,
    collections: str | None = None,
    ids: str | None = None,
    bbox: str | None = None,
    intersects: str | None = None,
    datetime: str | None = None,
    limit: str | None = None,
    token: str | None = None,
) -> ItemQuery:
    """The query of a GET: lists comma-separated, `intersects` as JSON text; unknown parameters are a 400."""
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise InvalidInput(f"unknown parameter {unknown[0]!r}; this endpoint takes {', '.join(sorted(allowed))}")
    return item_query(
        collections=_split(collections),
        ids=_split(ids),
        bbox=bbox,
        intersects=_geometry_text(intersects) if intersects else None,
        datetime=datetime,
        limit=limit,
        token=token,
    )


def parse_search_body(raw: bytes) -> SearchBody:
    """The body of a POST search: an empty body searches everything, anything malformed is a 400."""
    try:
        return SearchBody.model_validate_json(raw or b"{}")
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        raise InvalidInput(f"the search body is not valid: {problems}") from None


def query_from_body(body: SearchBody) -> ItemQuery:
    return item_query(
        collections=tuple(body.collections or ()),
        ids=tuple(body.ids or ()),
        bbox=body.bbox,
        intersects=body.intersects,
        datetime=body.datetime,
        limit=body.limit,
        token=body.token,
    )


def item_query(
    *,
    collections: Sequence[str],
    ids: Sequence[str],
    bbox: str | Sequence[float] | None,
    intersects: dict[str, Any] | None,
    datetime: str | None,
    limit: str | int | None,
    token: str | None,
) -> ItemQuery:
    """Check and normalise every parameter; `bbox` and `intersects` exclude each other, as the spec says."""
    if bbox is not None and intersects is not None:
        raise InvalidInput("give either bbox or intersects, not both")
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"{len(ids)} ids asked for; ask for at most {MAX_IDS} at a time")
    return ItemQuery(
        collections=tuple(dict.fromkeys(collections)),
        ids=tuple(dict.fromkeys(ids)),
        bbox=geometry_bbox(intersects) if intersects is not None else parse_bbox(bbox),
        interval=parse_rfc3339_interval(datetime),
        limit=parse_limit(limit),
        token=token or None,
    )


def parse_limit(value: str | int | None) -> int:
    """1 and up; more than `MAX_LIMIT` asks for `MAX_LIMIT`."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise InvalidInput(f"limit {value!r} is not a whole number") from None
    if limit < 1:
        raise InvalidInput(f"limit {limit} is below 1; ask for between 1 and {MAX_LIMIT} items a page")
    return min(limit, MAX_LIMIT)


def parse_rfc3339_interval(value: str | None) -> Interval | None:
    """An RFC 3339 instant or interval (`START/END`, either end `..` or empty), as STAC requires."""
    if value is None:
        return None
    for part in value.split("/"):
        if part.strip() not in _OPEN and not _RFC3339.fullmatch(part.strip().upper()):
            raise InvalidInput(
                f"datetime {value!r}: {part!r} is not an RFC 3339 date-time with a time zone, "
                "such as 2020-01-31T12:00:00Z; an interval is START/END, with '..' for an open end"
            )
    return parse_interval(value.upper())


def geometry_bbox(geometry: Mapping[str, Any]) -> BBox:
    """The bounding box of a GeoJSON geometry (how `intersects` is answered)."""
    positions = list(_positions(geometry))
    if not positions:
        raise InvalidInput("intersects: the geometry has no coordinates")
    longitudes, latitudes = [p[0] for p in positions], [p[1] for p in positions]
    box = parse_bbox([min(longitudes), min(latitudes), max(longitudes), max(latitudes)])
    assert box is not None
    return box


def _positions(geometry: Mapping[str, Any]) -> Iterator[tuple[float, float]]:
    kind = geometry.get("type") if isinstance(geometry, Mapping) else None
    if kind == "GeometryCollection":
        for member in geometry.get("geometries") or []:
            yield from _positions(member)
        return
    if kind not in _GEOMETRY_TYPES:
        raise InvalidInput(f"intersects: {kind!r} is not a GeoJSON geometry type")
    yield from _flatten(geometry.get("coordinates"))


def _flatten(coordinates: Any) -> Iterator[tuple[float, float]]:
    if isinstance(coordinates, list) and coordinates and all(isinstance(c, int | float) for c in coordinates):
        if len(coordinates) < 2:
            raise InvalidInput("intersects: a position needs a longitude and a latitude")
        yield float(coordinates[0]), float(coordinates[1])
    elif isinstance(coordinates, list):
        for member in coordinates:
            yield from _flatten(member)
    else:
        raise InvalidInput("intersects: coordinates must be nested arrays of numbers")


def _geometry_text(text: str) -> dict[str, Any]:
    try:
        geometry = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput("intersects is not a GeoJSON geometry in JSON") from None
    if not isinstance(geometry, dict):
        raise InvalidInput("intersects is not a GeoJSON geometry in JSON")
    return geometry


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip()) if value else ()
