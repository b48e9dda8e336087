"""What the catalog knows of one granule, read from the file without loading its data variables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VariableInfo:
    name: str
    dims: tuple[str, ...]
    dtype: str
    units: str | None = None
    standard_name: str | None = None
    long_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dims": list(self.dims),
            "dtype": self.dtype,
            "units": self.units,
            "standard_name": self.standard_name,
            "long_name": self.long_name,
        }


@dataclass(frozen=True)
class GranuleMetadata:
    """Time coverage, footprint and variables of a readable granule.

    The bounding box follows STAC: west > east when the footprint crosses the antimeridian; longitudes in
    [-180, 180], latitudes in [-90, 90]. `footprint` is a GeoJSON geometry when finer than the box (swaths).
    """

    time_start: dt.datetime
    time_end: dt.datetime
    west: float
    south: float
    east: float
    north: float
    variables: tuple[VariableInfo, ...]
    footprint: dict[str, Any] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
