"""Zarr stores as granules: a directory with Zarr metadata is one granule, like a NetCDF file.

Zarr v2 stores are read by netCDF-C's NCZarr (the same reader as for NetCDF files, through a `file://...#mode=zarr`
URL) and opened with xarray's zarr engine. Zarr v3 stores (only `zarr.json`) are not read by netCDF-C yet: the
reader reports them unreadable with that reason.
"""

from __future__ import annotations

import os
from pathlib import Path

V2_MARKERS = (".zmetadata", ".zgroup", ".zattrs")
V3_MARKER = "zarr.json"
MARKERS = (*V2_MARKERS, ".zarray", V3_MARKER)


def is_zarr_store(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a directory holding Zarr metadata."""
    location = Path(path)
    return location.is_dir() and any((location / marker).exists() for marker in MARKERS)


def is_zarr_v2(path: str | os.PathLike[str]) -> bool:
    return any((Path(path) / marker).exists() for marker in V2_MARKERS)


def netcdf_url(path: str | os.PathLike[str]) -> str:
    """The URL under which netCDF-C opens a Zarr v2 store."""
    return f"file://{Path(path).resolve()}#mode=zarr,file"


def xarray_engine(path: str | os.PathLike[str]) -> str:
    """The xarray engine for a granule: zarr for a store, netcdf4 for a file."""
    return "zarr" if Path(path).is_dir() else "netcdf4"


def store_stat(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(total bytes, newest mtime in ns) of a store's files: what the indexer compares to see it changed."""
    size, newest = 0, 0
    for directory, _subdirectories, files in os.walk(path):
        for name in files:
            info = (Path(directory) / name).lstat()
            size += info.st_size
            newest = max(newest, info.st_mtime_ns)
    return size, newest


def granule_stat(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(size, mtime in ns) of a granule, a file or a Zarr store."""
    if Path(path).is_dir():
        return store_stat(path)
    info = Path(path).stat()
    return info.st_size, info.st_mtime_ns
