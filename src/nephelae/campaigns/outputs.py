"""The files of a task: its inputs opened lazily, its output written once under its key with CF and provenance
attributes, and its log.

An output is `output_dir/<key[:2]>/<key>.nc` (or `<key>.zarr`, a Zarr v2 store). It is written under a temporary
name in the same directory (`.<key>.<pid>.<random>.tmp`: hidden, so the catalog's indexer never sees it), flushed to
disk, then hard-linked to its final name, which therefore only ever names a complete file. The first run to finish
wins: a duplicate run (Dask may run a task twice after losing a worker) finds the name taken and drops its own copy,
so a published output is never rewritten. File systems without hard links fall back to `os.replace` (last rename
wins, the same content). A Zarr store is written as NetCDF first (the same path for every kind of processor),
converted into a hidden temporary store beside its final name, synced, and renamed into place: renaming a directory
onto a non-empty one fails, so there too the first run wins.

User code in the sandbox writes in a staging directory of its own, `output_dir/.staging/<host>-<pid>-<random>/`,
from which the platform moves the file into the output directory (`adopt`) before publishing it.

This module also runs inside the sandbox (`nephelae.campaigns.shim`): it knows no database and no Dask cluster.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import secrets
import shutil
import socket
import stat
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import xarray as xr

from nephelae.campaigns.tasks import TaskRequest
from nephelae.catalog.stores import granule_stat, xarray_engine
from nephelae.errors import InvalidInput

CONVENTIONS = "CF-1.8"
COMPRESSION = {"zlib": True, "complevel": 4, "shuffle": True}
KEPT_ENCODING = ("dtype", "scale_factor", "add_offset", "_FillValue", "missing_value", "_Unsigned", "units", "calendar")
STAGING = ".staging"
SOFTWARE = ("nephelae", "xarray", "numpy", "netCDF4", "dask")
NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)
TAKEN = (errno.ENOTEMPTY, errno.EEXIST)
SUFFIXES = {"netcdf": ".nc", "zarr": ".zarr"}


def output_path(output_dir: str | Path, key: str, output_format: str = "netcdf") -> Path:
    """Where the output of `key` lives: sharded by the key's first two characters."""
    return Path(output_dir) / key[:2] / f"{key}{SUFFIXES[output_format]}"


def output_size(path: Path) -> int:
    """Bytes of an output, a file or a Zarr store."""
    return granule_stat(path)[0]


def discard(path: Path) -> None:
    """Remove a temporary output, a file or a store, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def temporary_path(final: Path) -> Path:
    """A fresh temporary name beside `final`, unique to this process and call."""
    return final.with_name(f".{final.stem}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


def publish(temporary: Path, final: Path) -> bool:
    """Give the complete, synced `temporary` its final name; False if another run published `final` first.

    `temporary` is left in place (a second name of the output, or the losing copy): the caller removes it.
    """
    if temporary.is_dir():
        return _publish_store(temporary, final)
    try:
        final.hardlink_to(temporary)
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
        if final.exists():
            return False
        temporary.replace(final)
    sync_directory(final.parent)
    return True


def _publish_store(temporary: Path, final: Path) -> bool:
    try:
        temporary.rename(final)  # atomic; refused when `final` is a store already (not empty)
    except OSError as error:
        if error.errno in TAKEN:
            return False
        raise
    sync_directory(final.parent)
    return True


def write_zarr_store(netcdf: Path, final: Path) -> Path:
    """A synced Zarr v2 store beside `final` holding what the NetCDF file `netcdf` holds; returns its temporary name.

    Zarr v2, consolidated: netCDF-C (and so the catalog's reader) reads it, and so does xarray's zarr engine.
    """
    store = temporary_path(final).with_suffix(".tmp.zarr")
    with xr.open_dataset(netcdf, engine="netcdf4", decode_timedelta=False, mask_and_scale=False) as dataset:
        for variable in dataset.variables.values():
            variable.encoding = {key: value for key, value in variable.encoding.items() if key in KEPT_ENCODING}
        try:
            dataset.to_zarr(store, mode="w-", zarr_format=2, consolidated=True)
        except BaseException:
            shutil.rmtree(store, ignore_errors=True)
            raise
    for directory, _subdirectories, files in os.walk(store):
        for name in files:
            sync_file(Path(directory, name))
        sync_directory(Path(directory))
    return store


def new_staging(output_dir: str | Path) -> Path:
    """A fresh directory for one sandbox to write its output in: inside the output dataset's root (the same file
    system, so the output moves into place by a rename) but hidden from the catalog's indexer."""
    root = Path(output_dir) / STAGING
    prefix = f"{socket.gethostname()}-"
    _remove_orphans(root, prefix)
    staging = root / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o711, parents=True)  # bubblewrap enters it before the sandbox takes its own uid
    return staging


def _remove_orphans(root: Path, prefix: str) -> None:
    """Remove the staging directories of this host's processes that are gone (killed before cleaning up)."""
    for entry in root.glob(f"{prefix}*"):
        pid = entry.name.removeprefix(prefix).partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: whether the process exists, nothing sent
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def sync_file(path: Path) -> None:
    """Flush `path`'s content to disk, so that a crash after its rename cannot leave it empty."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_directory(path: Path) -> None:
    """Flush a directory's entries (a new name in it) to disk."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def adopt(staged: Path, final: Path) -> Path:
    """Move a file written by user code into a temporary name beside `final`, checked and synced; returns that name.

    The file comes from a directory the sandbox can write, on the same file system: it is renamed into the output
    directory, which the sandbox cannot see, before it is examined, and must be a plain file with one link (not a
    symbolic link planted to make the platform publish a file of its own). It is then owned by the platform.
    """
    temporary = temporary_path(final)
    try:
        staged.rename(temporary)
    except FileNotFoundError:
        raise InvalidInput(f"the processor wrote no output file (expected {staged.name})") from None
    try:
        descriptor = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise InvalidInput("the processor's output is not a regular file") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            raise InvalidInput("the processor's output is not a regular file with a single name")
        if os.geteuid() == 0:
            os.fchown(descriptor, 0, 0)
        os.fchmod(descriptor, 0o644)
        os.fsync(descriptor)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    finally:
        os.close(descriptor)
    return temporary


def open_inputs(inputs: Mapping[str, Sequence[str]]) -> dict[str, xr.Dataset]:
    """Each alias's granules opened lazily as one dataset (an empty dataset when the alias matched no granule)."""
    opened: dict[str, xr.Dataset] = {}
    try:
        for alias, paths in inputs.items():
            opened[alias] = open_granules(alias, paths)
    except BaseException:
        close_all(opened.values())
        raise
    return opened


def open_granules(alias: str, paths: Sequence[str]) -> xr.Dataset:
    """Granules of one input, in time order, as one lazy (dask) dataset: several are concatenated along time.

    The small variables that describe the axes (non-index coordinates, such as the latitude and longitude of swaths,
    and cell bounds) are read at once: comparing or reading them, here or in a processor, then computes nothing
    through Dask, whose default on a Dask worker would be to send the work back to the cluster. Granules that differ
    in shape cannot be combined.
    """
    datasets = [_open_granule(path) for path in paths]
    if not datasets:
        return xr.Dataset()
    if len(datasets) == 1:
        return datasets[0]
    try:
        combined = xr.concat(datasets, dim="time", data_vars="all", coords="different", compat="equals", join="exact")
    except (ValueError, KeyError) as error:
        close_all(datasets)
        raise InvalidInput(
            f"the {len(paths)} granules of input {alias!r} cannot be combined along time ({error}); "
            "process them one at a time with group_by: granule"
        ) from None
    combined.set_close(lambda: close_all(datasets))
    return combined


def _open_granule(path: str) -> xr.Dataset:
    dataset = xr.open_dataset(path, engine=xarray_engine(path), decode_timedelta=False, chunks={})
    bounds = {variable.attrs["bounds"] for variable in dataset.variables.values() if "bounds" in variable.attrs}
    axes = [
        name for name in dataset.variables if name in bounds or (name in dataset.coords and name not in dataset.indexes)
    ]
    for name in axes:  # in place: a copy would lose the closing of the file
        dataset[name] = dataset.variables[name].compute(scheduler="synchronous")
    return dataset


def close_all(datasets: Any) -> None:
    """Close every dataset of an iterable (their files)."""
    for dataset in datasets:
        dataset.close()


def provenance(request: TaskRequest) -> dict[str, str]:
    """The provenance attributes of a task's output: campaign, processor, parameters, input granules, software."""
    granules = {alias: [Path(path).name for path in paths] for alias, paths in request.inputs.items()}
    attributes = {
        "nephelae_campaign": str(request.campaign_id),
        "nephelae_campaign_name": request.campaign_name,
        "nephelae_processor": request.processor_identity,
        "nephelae_parameters": canonical_json(request.parameters),
        "nephelae_input_granules": canonical_json(granules),
        "nephelae_task_key": request.key,
        "nephelae_software": canonical_json(software_versions()),
        "date_created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for name, value in request.provenance.items():
        attributes.setdefault(f"nephelae_{name}", value if isinstance(value, str) else canonical_json(value))
    return attributes


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def software_versions() -> dict[str, str]:
    """Versions of the software that computes and writes outputs."""
    versions = {}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def output_attributes(existing: Mapping[str, Any], provenance: Mapping[str, str]) -> dict[str, Any]:
    """Global attributes of an output: the dataset's own, CF-1.8 conventions, the history line and the provenance."""
    attrs = dict(existing)
    attrs["Conventions"] = conventions(str(existing.get("Conventions", "")))
    task = provenance.get("nephelae_task_key", "")
    line = (
        f"{provenance.get('date_created', '')} nephelae campaign {provenance.get('nephelae_campaign_name', '')} "
        f"(id {provenance.get('nephelae_campaign', '')}), task {task}: {provenance.get('nephelae_processor', '')}"
    )
    history = str(existing.get("history", "")).rstrip()
    attrs["history"] = f"{history}\n{line}" if history else line
    attrs.update(provenance)
    return attrs


def conventions(existing: str) -> str:
    """`existing` with its CF version replaced by CF-1.8 (other conventions, such as ACDD-1.3, kept)."""
    others = [part for part in existing.replace(",", " ").split() if not part.startswith("CF-")]
    return ", ".join([CONVENTIONS, *others])


def write_netcdf(dataset: xr.Dataset, path: Path, provenance: Mapping[str, str]) -> None:
    """Compute `dataset` and write it to `path` as NetCDF-4 with CF and provenance attributes, then sync it.

    Dask computes on this thread only (the synchronous scheduler): on a Dask worker the task is already one unit of
    the cluster's work, and must not send work back to the cluster it is running on.
    """
    output = dataset.copy(deep=False)
    output.attrs = output_attributes(dataset.attrs, provenance)
    output.encoding = {}
    delayed = output.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=_encodings(output), compute=False)
    delayed.compute(scheduler="synchronous")  # type: ignore[no-untyped-call]
    sync_file(path)


def _encodings(dataset: xr.Dataset) -> dict[str, dict[str, Any]]:
    """How each variable is stored: its values' packing kept, layout reset, numbers compressed, axes without fill."""
    bounds = {str(coordinate.attrs["bounds"]) for coordinate in dataset.coords.values() if "bounds" in coordinate.attrs}
    encodings = {}
    for name, variable in dataset.variables.items():
        encoding = {key: value for key, value in variable.encoding.items() if key in KEPT_ENCODING}
        if variable.ndim and (variable.dtype.kind in "fiuM" or "scale_factor" in encoding):
            encoding |= COMPRESSION
        if (name in dataset.coords or name in bounds) and variable.dtype.kind in "fM":
            encoding["_FillValue"] = None  # CF: coordinates and their bounds have no missing values
        encodings[str(name)] = encoding
    return encodings


def annotate_netcdf(path: Path, provenance: Mapping[str, str]) -> None:
    """Add the CF and provenance attributes to a NetCDF file a command wrote, after checking xarray can read it."""
    import netCDF4  # untyped; needed only here, in the sandbox

    with xr.open_dataset(path, engine="netcdf4", decode_timedelta=False) as dataset:
        existing = dict(dataset.attrs)
    attrs = output_attributes(existing, provenance)
    with netCDF4.Dataset(path, "a") as nc:
        nc.setncatts({key: attrs[key] for key in ("Conventions", "history", *provenance)})


class TaskLog:
    """The task's log file: a section per attempt (a retry appends one), written as the attempt goes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def begin(self, request: TaskRequest, worker: str) -> None:
        """Open the attempt's section: which task, where, with what."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._write(
            f"===== {now} campaign {request.campaign_name} (id {request.campaign_id}), task {request.ordinal}, "
            f"submission {request.run}, on {worker} =====\n"
        )
        counts = ", ".join(f"{alias}: {len(paths)} granule(s)" for alias, paths in request.inputs.items())
        self.line(f"processor {request.processor_identity}; inputs {counts or 'none'}; key {request.key}")

    def line(self, text: str) -> None:
        """One timestamped line."""
        self._write(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {text}\n")

    def block(self, title: str, text: str) -> None:
        """What a processor printed, between markers (nothing if it printed nothing)."""
        if text.strip():
            self._write(f"----- {title} -----\n{text.rstrip()}\n----- end of {title} -----\n")

    def failure(self, message: str, traceback_text: str, outcome: str) -> None:
        """The attempt's error, with its traceback."""
        self.line(f"error: {message}")
        self.block("traceback", traceback_text)
        self.line(outcome)

    def _write(self, text: str) -> None:
        with self.path.open("a", encoding="utf-8", errors="replace") as file:
            file.write(text)
