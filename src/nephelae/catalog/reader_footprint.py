"""GeoJSON footprints of swaths (polygons) and along-track files (lines), split at the antimeridian.

Good enough for display and for a finer filter than the box, not for geodesy: edges are straight in lon/lat,
vertices are thinned to at most `SIDE_VERTICES` per swath side (`TRACK_VERTICES` per track) and rounded to 1e-4
degree. Polygons are counter-clockwise (RFC 7946); a swath round a pole is closed along the pole's latitude.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Point = tuple[float, float]

SIDE_VERTICES = 48
TRACK_VERTICES = 256
DECIMALS = 4


def swath_sides(lat: FloatArray, lon: FloatArray) -> list[FloatArray]:
    """The outline of the valid pixels of a (sampled) swath as four sides of (lon, lat) points, in ring order:
    the first valid scan line, the last valid pixel of each line, the last line backwards, the first valid pixel
    of each line backwards. Rows are scan lines; missing pixels (NaN) are left out of the outline."""
    valid = np.isfinite(lat) & np.isfinite(lon)
    rows = np.flatnonzero(valid.any(axis=1))
    if rows.size == 0:
        return [np.empty((0, 2))]
    first = valid.argmax(axis=1)
    last = valid.shape[1] - 1 - valid[:, ::-1].argmax(axis=1)
    top, bottom, middle = rows[0], rows[-1], rows[1:-1]
    top_cols = np.flatnonzero(valid[top])
    bottom_cols = np.flatnonzero(valid[bottom])[::-1] if bottom != top else np.empty(0, dtype=int)
    sides = [
        (np.full(top_cols.size, top), top_cols),
        (middle, last[middle]),
        (np.full(bottom_cols.size, bottom), bottom_cols),
        (middle[::-1], first[middle[::-1]]),
    ]
    return [np.column_stack([lon[r, c], lat[r, c]]) for r, c in sides]


def polygon_footprint(sides: list[FloatArray], pole: int) -> dict[str, Any] | None:
    """A Polygon, or a MultiPolygon when the outline crosses the antimeridian; None when it is degenerate.

    The outline is unwrapped into continuous longitudes, closed through the pole if it goes round one, cut into
    360-degree strips and each piece shifted back into [-180, 180].
    """
    ring = np.concatenate([_thin(side, SIDE_VERTICES) for side in sides])
    if len(ring) < 3:
        return None
    x = ring[0, 0] + np.concatenate([[0.0], np.cumsum(wrap(np.diff(ring[:, 0])))])
    points = list(zip(x.tolist(), ring[:, 1].tolist(), strict=True))
    closing = points[-1][0] + float(wrap(points[0][0] - points[-1][0]))
    if pole:
        points += [(closing, points[0][1]), (closing, 90.0 * pole), (points[0][0], 90.0 * pole)]
    elif abs(closing - points[0][0]) > 1e-6:
        return None  # winds round the globe without enclosing a pole: no simple polygon
    lows, highs = min(p[0] for p in points), max(p[0] for p in points)
    if highs - lows > (540.0 if pole else 360.0):  # round a pole the edge may overshoot the full turn a little
        return None
    polygons = []
    for strip in range(math.ceil((lows - 180.0) / 360.0), math.floor((highs + 180.0) / 360.0) + 1):
        piece = _clip(points, 360.0 * strip - 180.0, 360.0 * strip + 180.0)
        outline = _counter_clockwise(_rounded([(lon - 360.0 * strip, lat) for lon, lat in piece], ring=True))
        if len(outline) >= 3 and _area(outline) != 0.0:
            polygons.append([[*outline, outline[0]]])
    if not polygons:
        return None
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": _as_lists(polygons[0])}
    return {"type": "MultiPolygon", "coordinates": [_as_lists(polygon) for polygon in polygons]}


def track_footprint(lon: FloatArray, lat: FloatArray) -> dict[str, Any] | None:
    """The ground track as a LineString, or a MultiLineString cut where it crosses the antimeridian."""
    points = _thin(np.column_stack([lon, lat]), TRACK_VERTICES)
    if len(points) < 2:
        return None
    x = np.unwrap(points[:, 0], period=360.0)
    lines: list[list[Point]] = [[]]
    for index, (x2, y2) in enumerate(zip(x.tolist(), points[:, 1].tolist(), strict=True)):
        strip = math.floor((x2 + 180.0) / 360.0)
        if index and (previous := math.floor((x[index - 1] + 180.0) / 360.0)) != strip:
            x1, y1 = float(x[index - 1]), float(points[index - 1, 1])
            edge = 360.0 * max(previous, strip) - 180.0
            crossing = y1 + (edge - x1) / (x2 - x1) * (y2 - y1)
            lines[-1].append((edge - 360.0 * previous, crossing))
            lines.append([(edge - 360.0 * strip, crossing)])
        lines[-1].append((x2 - 360.0 * strip, y2))
    parts = [_as_lists([line]) for line in (_rounded(line, ring=False) for line in lines) if len(line) >= 2]
    if not parts:
        return None
    if len(parts) == 1:
        return {"type": "LineString", "coordinates": parts[0][0]}
    return {"type": "MultiLineString", "coordinates": [part[0] for part in parts]}


def _thin(points: FloatArray, most: int) -> FloatArray:
    """At most `most` points, evenly spread, the first and the last kept."""
    if len(points) <= most:
        return points
    kept: FloatArray = points[np.unique(np.linspace(0, len(points) - 1, most).round().astype(int))]
    return kept


def _clip(points: list[Point], low: float, high: float) -> list[Point]:
    """Sutherland-Hodgman clipping of a polygon (not closed) to the strip low <= x <= high."""
    if all(low <= x <= high for x, _ in points):
        return points  # the usual case: nothing to cut
    for edge, keep_above in ((low, True), (high, False)):
        clipped: list[Point] = []
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
            inside1, inside2 = (x1 >= edge, x2 >= edge) if keep_above else (x1 <= edge, x2 <= edge)
            if inside1:
                clipped.append((x1, y1))
            if inside1 != inside2:
                clipped.append((edge, y1 + (edge - x1) / (x2 - x1) * (y2 - y1)))
        points = clipped
    return points


def _rounded(points: list[Point], *, ring: bool) -> list[Point]:
    """Rounded to 1e-4 degree, without consecutive repeats (nor, for a ring, a last point equal to the first)."""
    rounded: list[Point] = []
    for lon, lat in points:
        point = (round(lon, DECIMALS) + 0.0, round(lat, DECIMALS) + 0.0)  # + 0.0: no -0.0 in the JSON
        if not rounded or point != rounded[-1]:
            rounded.append(point)
    while ring and len(rounded) > 1 and rounded[0] == rounded[-1]:
        rounded.pop()
    return rounded


def _area(points: list[Point]) -> float:
    """Signed area (shoelace): positive when counter-clockwise."""
    return 0.5 * sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True))


def _counter_clockwise(points: list[Point]) -> list[Point]:
    return points[::-1] if _area(points) < 0 else points


def _as_lists(rings: list[list[Point]]) -> list[list[list[float]]]:
    return [[[lon, lat] for lon, lat in ring] for ring in rings]


def wrap(longitude: Any) -> FloatArray:
    """Longitudes (numbers or arrays) in [-180, 180)."""
    wrapped: FloatArray = (np.asarray(longitude, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return wrapped
