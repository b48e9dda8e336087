"""Files of a workspace: list, read, write atomically within a size limit and a quota, delete.

Every operation goes through `Workspace` (see `nephelae.workspaces.paths`): paths are checked, and every directory and
file is opened relative to its parent's descriptor without following links. An upload is written to a hidden
temporary file next to its destination and renamed into place once complete, so a reader never sees half a file and
an interrupted upload leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from nephelae.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
)
from nephelae.workspaces.paths import Workspace, parse_path

MIB = 1 << 20
UPLOAD_PREFIX = ".nephelae-upload-"  # hidden temporary files of uploads in progress
MAX_ENTRIES = 10_000  # entries one listing returns
READ_CHUNK = 1 << 20
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO must not hang us


@dataclass(frozen=True)
class Entry:
    """One file or directory of a workspace; `path` is relative to the workspace's top."""

    path: str
    size: int
    mtime: dt.datetime
    is_dir: bool


def _entry(path: PurePosixPath, status: os.stat_result) -> Entry:
    is_dir = stat.S_ISDIR(status.st_mode)
    mtime = dt.datetime.fromtimestamp(status.st_mtime, dt.UTC)
    return Entry(path=path.as_posix(), size=0 if is_dir else status.st_size, mtime=mtime, is_dir=is_dir)


def list_entries(workspace: Workspace, path: str = "", *, recursive: bool = False) -> list[Entry]:
    """The entries of directory `path` (the top when empty), sorted by path; a file lists as itself.

    `recursive` walks the subdirectories too (never through links). Uploads in progress are not shown.
    """
    relative = workspace.resolve(parse_path(path, allow_root=True))
    if relative.parts:
        with workspace.directory(relative.parent) as parent:
            status = _lstat(parent, relative.name, relative)
        if not stat.S_ISDIR(status.st_mode):
            return [_entry(relative, status)]
    with workspace.directory(relative) as fd:
        entries = list(_walk(fd, relative, recursive))
    return sorted(entries, key=lambda entry: entry.path)


def _lstat(directory: int, name: str, relative: PurePosixPath) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        raise NotFound(f"{relative} does not exist in your workspace; `nephelae files ls` shows what does") from None


def _walk(fd: int, relative: PurePosixPath, recursive: bool) -> Iterator[Entry]:
    count = 0
    for directory, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
        prefix = relative.joinpath(directory)
        for name in (*dirnames, *filenames):
            if name.startswith(UPLOAD_PREFIX):
                continue
            count += 1
            if count > MAX_ENTRIES:
                raise InvalidInput(f"{prefix} holds more than {MAX_ENTRIES} entries; list one subdirectory at a time")
            try:
                yield _entry(prefix / name, os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
            except FileNotFoundError:
                continue  # removed while we looked (a running script)
        if not recursive:
            dirnames.clear()


def usage_bytes(workspace: Workspace) -> int:
    """The total size of the regular files of the workspace, uploads in progress included."""
    total = 0
    with workspace.directory(PurePosixPath()) as fd:
        for _, _, filenames, dir_fd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
            for name in filenames:
                try:
                    status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                total += status.st_size if stat.S_ISREG(status.st_mode) else 0
    return total


class OpenedFile:
    """A regular file of a workspace opened for reading; iterate `chunks()` (which closes it) or `close()` it."""

    def __init__(self, fd: int, entry: Entry) -> None:
        self.entry = entry
        self._file = os.fdopen(fd, "rb", buffering=0)

    def chunks(self, size: int = READ_CHUNK) -> Iterator[bytes]:
        """The file's bytes, `size` at a time; the file is closed at the end (or when the iterator is dropped)."""
        try:
            while chunk := self._file.read(size):
                yield chunk
        finally:
            self.close()

    def read(self) -> bytes:
        try:
            return self._file.read()
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()


def open_file(workspace: Workspace, path: str) -> OpenedFile:
    """The regular file `path` of the workspace, opened for reading; a directory, FIFO or device is refused."""
    relative = workspace.resolve(parse_path(path))
    if not relative.parts:
        raise InvalidInput(f"{path} is the top of your workspace, a directory; list it with `nephelae files ls`")
    with workspace.directory(relative.parent) as parent:
        fd = _open_nofollow(parent, relative)
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        if stat.S_ISDIR(status.st_mode):
            raise InvalidInput(f"{relative} is a directory; list it with `nephelae files ls {relative}`")
        raise InvalidInput(f"{relative} is not a regular file (a FIFO, socket or device); it cannot be downloaded")
    if status.st_nlink > 1:
        # Another name of this file may lie outside the workspace (a hard link to a file the platform may read
        # but the user may not), and nothing here can tell where; sandboxes cannot make such links (a link across
        # mounts fails), a login of accounts mode can where the kernel allows it (fs.protected_hardlinks = 0).
        os.close(fd)
        raise PermissionDenied(
            f"{relative} has {status.st_nlink} hard links and may be a file from outside your workspace; "
            f"copy it (`cp {relative} copy`) and use the copy"
        )
    return OpenedFile(fd, _entry(relative, status))


def _open_nofollow(parent: int, relative: PurePosixPath) -> int:
    try:
        return os.open(relative.name, FILE_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise NotFound(f"{relative} does not exist in your workspace; `nephelae files ls` shows what does") from None
    except OSError as error:
        if error.errno == errno.ELOOP:  # a link swapped in after the path was resolved
            raise PermissionDenied(f"{relative} in your workspace was replaced by a symbolic link; try again") from None
        raise PermissionDenied(f"cannot open {relative} in your workspace: {error.strerror}") from None


@dataclass(frozen=True)
class UploadLimits:
    """How much one upload may write: `max_bytes` per file; `quota_bytes` for the whole workspace (None: none)."""

    max_bytes: int
    quota_bytes: int | None = None


class Upload:
    """One file being written into a workspace: `write` chunks, then `commit` (atomic rename) or `abort`."""

    def __init__(self, relative: PurePosixPath, directory: int, limit: int, quota_limited: bool, mode: int) -> None:
        self.relative = relative
        self.size = 0
        self._directory = directory
        self._limit = limit
        self._quota_limited = quota_limited
        self._temporary = f"{UPLOAD_PREFIX}{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._file = os.fdopen(os.open(self._temporary, flags, mode, dir_fd=directory), "wb")
        self._open = True

    def write(self, chunk: bytes) -> None:
        """Append `chunk`; past the limit the upload is aborted and PayloadTooLarge (or QuotaExceeded) raised."""
        self.size += len(chunk)
        if self.size > self._limit:
            self.abort()
            raise _too_large(self.relative, self._limit, self._quota_limited)
        self._file.write(chunk)

    def commit(self) -> Entry:
        """Make the file durable and rename it into place (replacing any file of that name); its entry."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temporary, self.relative.name, src_dir_fd=self._directory, dst_dir_fd=self._directory)
            status = os.stat(self.relative.name, dir_fd=self._directory, follow_symlinks=False)
        except OSError as error:
            self.abort()
            if error.errno == errno.EISDIR:
                raise Conflict(
                    f"{self.relative} is a directory in your workspace; remove it or choose another name"
                ) from None
            raise
        self._close_directory()
        return _entry(self.relative, status)

    def abort(self) -> None:
        """Drop the temporary file; nothing of the upload remains. Safe to call more than once."""
        if not self._open:
            return
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temporary, dir_fd=self._directory)
        self._close_directory()

    def _close_directory(self) -> None:
        if self._open:
            self._open = False
            os.close(self._directory)


def _too_large(relative: PurePosixPath, limit: int, quota_limited: bool) -> PayloadTooLarge:
    if quota_limited:
        return QuotaExceeded(
            f"{relative} does not fit in your workspace's quota ({_mb(limit)} left); remove files first "
            "(`nephelae files rm PATH`) or ask an operator for a larger quota"
        )
    return PayloadTooLarge(f"{relative} is larger than the {_mb(limit)} one upload may hold; split it")


def _mb(size: int) -> str:
    return f"{size / MIB:.1f} MB" if size >= MIB else f"{size} bytes"


def begin_upload(
    workspace: Workspace, path: str, limits: UploadLimits, *, declared_size: int | None = None, executable: bool = False
) -> Upload:
    """Start writing `path` (its directories made as needed) within `limits`; refused early if `declared_size`
    (the Content-Length) is already too large. The replaced file's size is freed from the quota.
    """
    relative = workspace.resolve(parse_path(path))
    if not relative.parts:
        raise InvalidInput("the top of your workspace is a directory; name a file, e.g. `scripts/run.py`")
    if relative.name.startswith(UPLOAD_PREFIX):
        raise InvalidInput(f"names starting with {UPLOAD_PREFIX} are reserved for uploads in progress")
    limit, quota_limited = limits.max_bytes, False
    if limits.quota_bytes is not None:
        left = limits.quota_bytes - usage_bytes(workspace) + _existing_size(workspace, relative)
        limit, quota_limited = (left, True) if left < limit else (limit, False)
    if declared_size is not None and declared_size > limit:
        raise _too_large(relative, max(limit, 0), quota_limited)
    directory = workspace.open_directory(relative.parent, create=True)
    try:
        return Upload(relative, directory, max(limit, 0), quota_limited, 0o755 if executable else 0o644)
    except BaseException:
        os.close(directory)
        raise


def _existing_size(workspace: Workspace, relative: PurePosixPath) -> int:
    try:
        with workspace.directory(relative.parent) as parent:
            status = os.stat(relative.name, dir_fd=parent, follow_symlinks=False)
    except (NotFound, InvalidInput, FileNotFoundError):
        return 0
    if stat.S_ISDIR(status.st_mode):
        raise Conflict(f"{relative} is a directory in your workspace; remove it or choose another name")
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


def delete_path(workspace: Workspace, path: str, *, recursive: bool = False) -> Entry:
    """Remove a file, a link (not what it points to) or an empty directory; `recursive` removes a whole directory."""
    relative = workspace.resolve_parent(parse_path(path))
    with workspace.directory(relative.parent) as parent:
        status = _lstat(parent, relative.name, relative)
        try:
            if not stat.S_ISDIR(status.st_mode):
                os.unlink(relative.name, dir_fd=parent)
            elif recursive:
                shutil.rmtree(relative.name, dir_fd=parent)  # fd-based: a link swapped in is removed, not followed
            else:
                os.rmdir(relative.name, dir_fd=parent)
        except OSError as error:
            if error.errno == errno.ENOTEMPTY:
                raise Conflict(
                    f"{relative} is a directory that is not empty; remove it with its contents with --recursive"
                ) from None
            raise PermissionDenied(f"cannot remove {relative} from your workspace: {error.strerror}") from None
    return _entry(relative, status)
