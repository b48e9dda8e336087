"""Read what the catalogue keeps of one granule, fast: the header, the coordinate variables and a few attributes.

The indexer calls `read_granule_metadata` in worker processes over millions of files, so it reads no data variable
(large lat/lon arrays are sampled, see `reader_space`), opens with netCDF4 directly (no xarray decoding) and turns
every failure into `UnreadableGranule(reason)`, which the indexer records. Before the C libraries see a file it is
checked here: a regular file (a FIFO would block), not empty, NetCDF-3 or HDF5 by its signature, and a NetCDF-3
file as long as its header says (netCDF-C reads zeros past the end of a truncated classic file, silently).

Zarr v2 stores (directories with `.zgroup` or `.zmetadata`) are read the same way, through netCDF-C's NCZarr; Zarr
v3 stores are reported unreadable with the reason (see `stores`). The time coverage rules are in `reader_time`, the
box and footprint in `reader_space`.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

import netCDF4
import numpy as np

from nephelae.catalog.metadata import GranuleMetadata, VariableInfo
from nephelae.catalog.reader_space import (
    Coordinates,
    extent_from_attributes,
    locate_coordinates,
    read_extent,
    walk_groups,
)
from nephelae.catalog.reader_time import find_time_variable, time_coverage
from nephelae.catalog.stores import MARKERS, V3_MARKER, is_zarr_v2, netcdf_url

SEARCH_ATTRIBUTES = (
    "title",
    "id",
    "platform",
    "sensor",
    "processing_level",
    "institution",
    "product_version",
    "Conventions",
    "summary",
)
MAX_TEXT = 500  # characters kept of a text attribute (summaries can run to pages)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CLASSIC_VERSIONS = {1, 2, 5}  # CDF-1 classic, CDF-2 64-bit offset, CDF-5 64-bit data
AUXILIARY_ATTRIBUTES = frozenset({"coordinates", "bounds", "climatology", "grid_mapping"})
COORDINATE_STANDARD_NAMES = frozenset({"time", "latitude", "longitude"})


class UnreadableGranule(Exception):
    """A file that cannot be catalogued; `reason` says why, for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_granule_metadata(path: str | os.PathLike[str], *, name: str | None = None) -> GranuleMetadata:
    """Time coverage, bounding box, footprint, variables and search attributes of one NetCDF/HDF5 granule.

    Time: the CF time coordinate first for gridded products, the global attributes first for swaths and tracks,
    then a date in the file name, `name` when given (a local copy of a remote file has a temporary name). Raises
    UnreadableGranule(reason) for anything that cannot be catalogued (missing, empty, truncated, not NetCDF/HDF5,
    no time, no position), never another exception.
    """
    location = Path(path)
    try:
        store = _check_file(location)
        with netCDF4.Dataset(netcdf_url(location) if store else location, "r") as dataset:
            return _describe(dataset, name or location.name)
    except UnreadableGranule:
        raise
    except OSError as error:
        hint = ": the file may be truncated or damaged" if (error.errno or 0) < 0 else ""  # netCDF-C codes are < 0
        raise UnreadableGranule(f"cannot read as NetCDF/HDF5 ({error.strerror or error}){hint}") from error
    except Exception as error:  # any failure of the C libraries on an odd file is recorded, not propagated
        raise UnreadableGranule(f"unexpected {type(error).__name__} while reading: {error}") from error


def _describe(dataset: Any, filename: str) -> GranuleMetadata:
    coordinates = locate_coordinates(dataset)
    groups = _time_search_order(dataset, coordinates)
    start, end = _coverage(dataset, groups, coordinates, filename)
    extent = (read_extent(coordinates) if coordinates is not None else None) or extent_from_attributes(dataset)
    if extent is None:
        raise UnreadableGranule(
            "no position: no latitude/longitude variables with valid values and no geospatial_lat/lon_min/max "
            "global attributes"
        )
    shown = [find_time_variable(groups), *((coordinates.lat, coordinates.lon) if coordinates else ())]
    return GranuleMetadata(
        time_start=start,
        time_end=end,
        west=extent.west,
        south=extent.south,
        east=extent.east,
        north=extent.north,
        variables=data_variables(dataset, hidden={_path(variable) for variable in shown if variable is not None}),
        footprint=extent.footprint,
        attributes=search_attributes(dataset),
    )


def _coverage(
    dataset: Any, groups: list[Any], coordinates: Coordinates | None, filename: str
) -> tuple[dt.datetime, dt.datetime]:
    swath_like = coordinates is not None and coordinates.kind != "grid"
    coverage = time_coverage(dataset, groups, attributes_first=swath_like, filename=filename)
    if coverage is None:
        raise UnreadableGranule(
            "no time information: no CF time coordinate (units 'seconds since ...'), no time_coverage_start or "
            "similar global attribute, and no YYYYMMDD date in the file name"
        )
    return coverage


def _time_search_order(dataset: Any, coordinates: Coordinates | None) -> list[Any]:
    """The group holding lat/lon, then the root, then every other group."""
    first = [coordinates.group] if coordinates is not None else []
    ordered: list[Any] = []
    for group in [*first, dataset, *walk_groups(dataset)]:
        if all(group is not seen for seen in ordered):
            ordered.append(group)
    return ordered


def data_variables(dataset: Any, hidden: set[str]) -> tuple[VariableInfo, ...]:
    """Every variable that is not a coordinate, bounds or grid mapping, in every group; names in groups carry the
    group path (`data_01/ku/ssha`). `dtype` is as stored: packed integers stay integers."""
    infos = []
    for group in walk_groups(dataset):
        auxiliary = _auxiliary_names(group)
        for variable in group.variables.values():
            if _is_coordinate(variable, hidden, auxiliary):
                continue
            infos.append(
                VariableInfo(
                    name=_path(variable),
                    dims=tuple(str(dim) for dim in variable.dimensions),
                    dtype=_dtype_name(variable),
                    units=_text(variable, "units"),
                    standard_name=_text(variable, "standard_name"),
                    long_name=_text(variable, "long_name"),
                )
            )
    return tuple(infos)


def _is_coordinate(variable: Any, hidden: set[str], auxiliary: set[str]) -> bool:
    """A coordinate in all but name: chosen as such, cited by others, named like its dimension, or a time,
    latitude or longitude by its standard name (Jason `time_20hz`, Sentinel-6 `time_tai`)."""
    name = variable.name
    if name in auxiliary or variable.dimensions == (name,) or _path(variable) in hidden:
        return True
    return _text(variable, "standard_name") in COORDINATE_STANDARD_NAMES


def _auxiliary_names(group: Any) -> set[str]:
    """Names that the variables of a group cite as coordinates, bounds or grid mapping (`crs`, `lat_bnds`)."""
    names: set[str] = set()
    for variable in group.variables.values():
        for key in AUXILIARY_ATTRIBUTES & set(variable.ncattrs()):
            value = variable.getncattr(key)
            if isinstance(value, str):
                names.update(word for word in value.split() if not word.endswith(":"))
    return names


def _path(variable: Any) -> str:
    prefix = variable.group().path.strip("/")
    return f"{prefix}/{variable.name}" if prefix else str(variable.name)


def _dtype_name(variable: Any) -> str:
    dtype = variable.dtype
    return "str" if dtype is str else str(getattr(dtype, "name", dtype))


def _text(variable: Any, name: str) -> str | None:
    if name not in variable.ncattrs():
        return None
    value = json_safe(variable.getncattr(name))
    return value if isinstance(value, str) else (None if value is None else str(value))


def search_attributes(dataset: Any) -> dict[str, Any]:
    """The global attributes useful to search and to STAC (`SEARCH_ATTRIBUTES`), JSON-safe, texts shortened."""
    present = set(dataset.ncattrs())
    selected = {name: json_safe(dataset.getncattr(name)) for name in SEARCH_ATTRIBUTES if name in present}
    return {name: value for name, value in selected.items() if value not in (None, "")}


def json_safe(value: Any) -> Any:
    """Plain Python for JSON: numpy scalars and arrays unpacked, bytes decoded, NaN as None, texts shortened."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        value = value.strip()
        return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"
    if isinstance(value, np.ndarray):
        return [json_safe(item) for item in value.ravel()[:100].tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, bool | int | float) or value is None else json_safe(str(value))


def _check_file(path: Path) -> bool:
    """Refuse, with a reason, what the C libraries should not be given; True for a Zarr store."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UnreadableGranule("no such file (moved or deleted since it was listed?)") from None
    if stat.S_ISDIR(info.st_mode):
        _check_store(path)
        return True
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableGranule("not a regular file (a FIFO, socket or device): not opened, so as not to block")
    if info.st_size == 0:
        raise UnreadableGranule("empty file (0 bytes)")
    with path.open("rb") as stream:
        head = stream.read(8)
        if head[:3] == b"CDF" and len(head) >= 4 and head[3] in CLASSIC_VERSIONS:
            _check_classic_length(stream, head[3], info.st_size)
        elif not _is_hdf5(stream, info.st_size):
            raise UnreadableGranule(f"not a NetCDF or HDF5 file (it starts with {head!r})")
    return False


def _check_store(path: Path) -> None:
    if not any((path / marker).exists() for marker in MARKERS):
        raise UnreadableGranule("a directory, not a NetCDF/HDF5 file or a Zarr store")
    if not is_zarr_v2(path):
        raise UnreadableGranule(
            f"a Zarr v3 store (only {V3_MARKER}): not catalogued yet, netCDF-C reads Zarr v2 stores (zarr_format=2)"
        )


def _is_hdf5(stream: BinaryIO, size: int) -> bool:
    """HDF5 signature at 0, or after a user block of 512, 1024, 2048... bytes."""
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        stream.seek(offset)
        if stream.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def _check_classic_length(stream: BinaryIO, version: int, size: int) -> None:
    needed = _ClassicHeader(stream, version, size).data_end()
    if size < needed:
        raise UnreadableGranule(f"truncated NetCDF-3 file: {size} bytes where its header needs {needed}")


_CLASSIC_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_DIMENSIONS, _VARIABLES, _ATTRIBUTES = 0x0A, 0x0B, 0x0C


class _ClassicHeader:
    """Just enough of the NetCDF-3 header grammar (CDF-1, -2, -5) to know where the last data byte lies."""

    def __init__(self, stream: BinaryIO, version: int, size: int) -> None:
        self._stream, self._size = stream, size
        self._count = 8 if version == 5 else 4  # width of counts and lengths
        self._offset = 4 if version == 1 else 8  # width of data offsets
        stream.seek(4)

    def data_end(self) -> int:
        """Byte offset just past the data of the last variable (0 while a streaming file gives no record count)."""
        records = self._int(self._count)
        streaming = records == (1 << (8 * self._count)) - 1
        lengths = [self._dimension() for _ in range(self._list(_DIMENSIONS))]
        self._skip_attributes()
        ends, record_items = [0], []
        for _ in range(self._list(_VARIABLES)):
            begin, shape, item = self._variable(lengths)
            if shape and shape[0] == 0:  # the record dimension has length 0 in the header
                record_items.append((begin, item * math.prod(shape[1:])))
            else:
                ends.append(begin + item * math.prod(shape))
        if record_items and records and not streaming:
            one = len(record_items) == 1  # a single record variable is not padded
            record = record_items[0][1] if one else sum(-(-length // 4) * 4 for _, length in record_items)
            ends += [begin + (records - 1) * record + length for begin, length in record_items]
        return max(ends)

    def _dimension(self) -> int:
        self._skip_name()
        return self._int(self._count)

    def _variable(self, lengths: list[int]) -> tuple[int, list[int], int]:
        self._skip_name()
        try:
            shape = [lengths[self._int(self._count)] for _ in range(self._bounded(self._int(self._count)))]
        except IndexError:
            raise UnreadableGranule("corrupt NetCDF-3 header: a variable uses an unknown dimension") from None
        self._skip_attributes()
        item = self._type_size(self._int(4))
        self._int(self._count)  # vsize: recomputed from the shape, it overflows past 4 GiB
        return self._int(self._offset), shape, item

    def _skip_attributes(self) -> None:
        for _ in range(self._list(_ATTRIBUTES)):
            self._skip_name()
            item = self._type_size(self._int(4))
            self._skip(item * self._bounded(self._int(self._count)))

    def _list(self, tag: int) -> int:
        found, count = self._int(4), self._int(self._count)
        if found not in (0, tag):
            raise UnreadableGranule("corrupt NetCDF-3 header")
        return self._bounded(count)

    def _skip_name(self) -> None:
        self._skip(self._bounded(self._int(self._count)))

    def _type_size(self, code: int) -> int:
        if code not in _CLASSIC_TYPE_SIZES:
            raise UnreadableGranule(f"corrupt NetCDF-3 header: unknown type {code}")
        return _CLASSIC_TYPE_SIZES[code]

    def _bounded(self, count: int) -> int:
        if count > self._size:  # a damaged count would otherwise loop for hours
            raise UnreadableGranule("corrupt NetCDF-3 header: a count larger than the file")
        return count

    def _skip(self, length: int) -> None:
        padded = -(-length // 4) * 4
        if self._stream.tell() + padded > self._size:
            raise UnreadableGranule("truncated NetCDF-3 file: the header itself is cut short")
        self._stream.seek(padded, os.SEEK_CUR)

    def _int(self, width: int) -> int:
        data = self._stream.read(width)
        if len(data) < width:
            raise UnreadableGranule("truncated NetCDF-3 file: the header itself is cut short")
        return int.from_bytes(data, "big")
