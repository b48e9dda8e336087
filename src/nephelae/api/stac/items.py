"""Datasets as STAC Collections and granules as STAC Items, built with pystac.

- Geometry: the granule's footprint when the indexer recorded one (swaths), else its bounding box as a polygon; a
  box crossing the antimeridian (west > east, as in STAC) becomes a MultiPolygon split at +-180 (RFC 7946, 3.1.9).
- Time: `datetime` for an instant; `start_datetime`/`end_datetime` (and a null `datetime`) for a period.
- Properties: `platform`, `instruments` and `processing:level` from the file's global attributes where present, and
  the variables as `nephelae:variables` (name, dims, dtype, units, standard_name, long_name).
- One asset, `data`: where the platform reads the file (a `file://` URI, or the fsspec URL under the dataset's root),
  with its path relative to the dataset as `nephelae:path`. Nothing is served for download: the code comes to the
  data, through the toolbox, analyses and campaigns.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pystac

from nephelae.api.stac.links import GEOJSON, StacUrls, link
from nephelae.db.models import Dataset, Granule

FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
WHOLE_EARTH = [-180.0, -90.0, 180.0, 90.0]

_MEDIA_TYPES = {
    ".nc": pystac.MediaType.NETCDF,
    ".nc4": pystac.MediaType.NETCDF,
    ".cdf": pystac.MediaType.NETCDF,
    ".h5": pystac.MediaType.HDF5,
    ".hdf5": pystac.MediaType.HDF5,
    ".he5": pystac.MediaType.HDF5,
    ".zarr": pystac.MediaType.ZARR,
}
_LICENSE = re.compile(r"[\w\-.+]+")  # an SPDX identifier, or "other"


def dataset_collection(dataset: Dataset, urls: StacUrls, host: str) -> dict[str, Any]:
    """The Collection of a dataset: its extent is the summary of its last indexing."""
    collection = pystac.Collection(
        id=dataset.id,
        title=dataset.title,
        description=dataset.description or dataset.title,
        extent=_extent(dataset),
        license=dataset.license if _LICENSE.fullmatch(dataset.license or "") else "other",
        keywords=_keywords(dataset) or None,
        providers=[pystac.Provider(host, roles=[pystac.ProviderRole.HOST])],
        extra_fields={"nephelae:granule_count": dataset.granule_count, "nephelae:variables": dataset.variables},
    )
    body = collection.to_dict(include_self_link=False, transform_hrefs=False)
    body["links"] = [
        link("self", urls.collection(dataset.id), title=dataset.title),
        link("root", urls.root, title="STAC landing page"),
        link("parent", urls.root, title="STAC landing page"),
        link("items", urls.items(dataset.id), GEOJSON, title=f"Items of {dataset.title}"),
    ]
    return body


def _extent(dataset: Dataset) -> pystac.Extent:
    box = [dataset.west, dataset.south, dataset.east, dataset.north]
    spatial = [float(value) for value in box if value is not None]
    return pystac.Extent(
        pystac.SpatialExtent([spatial if len(spatial) == 4 else WHOLE_EARTH]),
        pystac.TemporalExtent([[dataset.time_start, dataset.time_end]]),
    )


def _keywords(dataset: Dataset) -> list[str]:
    """The CF standard names of the dataset's variables: what a search for a quantity will look for."""
    return sorted({str(v["standard_name"]) for v in dataset.variables if v.get("standard_name")})


def granule_item(dataset: Dataset, granule: Granule, item_id: str, urls: StacUrls) -> dict[str, Any]:
    """The Item of a granule of `dataset`, named `item_id` (see `item_ids`)."""
    start, end = _coverage(granule)
    properties = granule_properties(granule)
    item = pystac.Item(
        id=item_id,
        geometry=granule_geometry(granule),
        bbox=_bbox(granule),
        datetime=start if start == end else None,
        start_datetime=None if start == end else start,
        end_datetime=None if start == end else end,
        properties=properties,
        collection=dataset.id,
        stac_extensions=[FILE_EXTENSION] + ([PROCESSING_EXTENSION] if "processing:level" in properties else []),
    )
    item.add_asset("data", data_asset(dataset, granule))
    body = item.to_dict(include_self_link=False, transform_hrefs=False)
    body["links"] = [
        link("self", urls.item(dataset.id, item_id), GEOJSON),
        link("parent", urls.collection(dataset.id)),
        link("collection", urls.collection(dataset.id)),
        link("root", urls.root),
    ]
    return body


def _coverage(granule: Granule) -> tuple[dt.datetime, dt.datetime]:
    """The time the granule covers; a readable granule always has one, the file's mtime stands in otherwise."""
    start = granule.time_start or dt.datetime.fromtimestamp(granule.mtime_ns / 1e9, dt.UTC)
    return start, granule.time_end or start


def _bbox(granule: Granule) -> list[float] | None:
    box = [granule.west, granule.south, granule.east, granule.north]
    return [float(value) for value in box if value is not None] if None not in box else None


def granule_geometry(granule: Granule) -> dict[str, Any] | None:
    """The footprint if known, else the bounding box; None for a granule with no position at all."""
    if granule.footprint:
        return granule.footprint
    box = _bbox(granule)
    return box_geometry(*box) if box else None


def box_geometry(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    """A box as a GeoJSON Polygon, or a MultiPolygon of its two halves when it crosses the antimeridian."""
    if west <= east:
        return {"type": "Polygon", "coordinates": [_ring(west, south, east, north)]}
    halves = [[_ring(west, south, 180.0, north)], [_ring(-180.0, south, east, north)]]
    return {"type": "MultiPolygon", "coordinates": halves}


def _ring(west: float, south: float, east: float, north: float) -> list[list[float]]:
    """Counter-clockwise, as RFC 7946 wants exterior rings."""
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


def granule_properties(granule: Granule) -> dict[str, Any]:
    """STAC common metadata from the file's global attributes (ACDD names), and the variables."""
    attributes = granule.attributes or {}
    properties: dict[str, Any] = {}
    if platform := _text(attributes.get("platform")):
        properties["platform"] = platform
    instruments = _text(attributes.get("instrument") or attributes.get("sensor"))
    if instruments:
        properties["instruments"] = [name.strip() for name in instruments.split(",") if name.strip()]
    if level := _text(attributes.get("processing_level")):
        properties["processing:level"] = level
    properties["nephelae:variables"] = granule.variables
    return properties


def _text(value: object) -> str | None:
    if isinstance(value, list | tuple):
        value = ", ".join(str(part) for part in value)
    return str(value).strip() or None if value is not None else None


def data_asset(dataset: Dataset, granule: Granule) -> pystac.Asset:
    suffix = PurePosixPath(granule.path).suffix.lower()
    return pystac.Asset(
        href=granule_location(dataset.root, granule.path),
        title=PurePosixPath(granule.path).name,
        description="Where the platform reads this file: open it with the toolbox or in a campaign, not by download.",
        media_type=_MEDIA_TYPES.get(suffix),
        roles=["data"],
        extra_fields={"file:size": granule.size, "nephelae:path": granule.path},
    )


def granule_location(root: str, path: str) -> str:
    """An absolute URI for `path` under a dataset root: the fsspec URL as it is, a local directory as file://."""
    if "://" in root:
        return f"{root.rstrip('/')}/{path}"
    return Path(root, path).absolute().as_uri()  # a directory of the machines that serve the platform


def feature_collection(features: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, Any]:
    """A page of Items: an ItemCollection, which is a GeoJSON FeatureCollection with links."""
    return {"type": "FeatureCollection", "features": features, "links": links, "numberReturned": len(features)}
