"""The host user a sandbox runs as, when the platform itself runs as root.

Run as root, bubblewrap would leave user code running as host uid 0 (capabilities dropped, but still the owner of
every root file it can reach), and the kernel never enforces RLIMIT_NPROC on uid 0, so `max_processes` would not stop
a fork bomb. So as root each sandbox switches to a uid of its own, leased from a fixed range: RLIMIT_NPROC counts the
processes of one uid across the host, hence one uid per live sandbox. The lease is an flock on a file in a root-only
directory, released when the worker closes or its process dies.

Run as an ordinary user, bubblewrap makes a user namespace instead: processes are counted per namespace, nothing to
lease.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from nephelae.sandbox.errors import SandboxSetupError

# systemd's allocation leaves 1879048192-2147483647 unused (no system, dynamic, container or homed users there).
UID_BASE = 1_900_000_000
UID_SLOTS = 4096
LEASE_DIR = Path("/run/nephelae-sandbox")


class Identity:
    """A host uid/gid leased to one sandbox; `release()` when the sandbox is gone."""

    def __init__(self, uid: int, gid: int, lock_fd: int) -> None:
        self.uid = uid
        self.gid = gid
        self._lock_fd: int | None = lock_fd

    def release(self) -> None:
        """Give the uid back (closing the lock file drops the flock); later calls do nothing."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def lease_identity() -> Identity | None:
    """A free sandbox uid when running as root; None otherwise (bubblewrap's user namespace does the job)."""
    if os.geteuid() != 0:
        return None
    directory = _lease_dir()
    for slot in range(UID_SLOTS):
        fd = os.open(directory / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return Identity(uid=UID_BASE + slot, gid=UID_BASE + slot, lock_fd=fd)
    raise SandboxSetupError(f"all {UID_SLOTS} sandbox uids are in use; close idle sandboxed workers")


def _lease_dir() -> Path:
    try:
        LEASE_DIR.mkdir(mode=0o700, exist_ok=True)
    except OSError as error:
        raise SandboxSetupError(f"cannot create {LEASE_DIR} for sandbox uid leases: {error.strerror}") from None
    status = LEASE_DIR.lstat()
    if LEASE_DIR.is_symlink() or status.st_uid != 0 or status.st_mode & 0o022:
        raise SandboxSetupError(f"{LEASE_DIR} must be a directory owned by root and writable by root alone")
    return LEASE_DIR


def give_directories(identity: Identity | None, directories: tuple[Path, ...]) -> None:
    """Hand the writable mounts, with everything in them, to the sandbox's uid, which could not write them otherwise.

    A workspace holds files uploaded by the platform and written by earlier runs under other leased uids: they all
    change hands, so no file needs to be writable by others. Links are not followed (a link planted by user code
    cannot redirect a chown outside the mount), and a file with several names is left alone: one of its other names
    may be outside the mount (a hard link to /etc/shadow made where protected_hardlinks is off).
    """
    if identity is None:
        return
    for directory in directories:
        try:
            os.chown(directory, identity.uid, identity.gid, follow_symlinks=False)
            for _, dirnames, filenames, dir_fd in os.fwalk(directory, follow_symlinks=False):
                for name in (*dirnames, *filenames):
                    _hand_over(name, dir_fd, identity)
        except OSError as error:
            raise SandboxSetupError(f"cannot hand {directory} to the sandbox's uid: {error.strerror}") from None


def _hand_over(name: str, dir_fd: int, identity: Identity) -> None:
    status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISREG(status.st_mode) and status.st_nlink > 1:
        return
    os.chown(name, identity.uid, identity.gid, dir_fd=dir_fd, follow_symlinks=False)
