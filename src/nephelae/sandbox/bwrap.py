"""The bubblewrap command line around a sandboxed Python, and the environment it starts with.

The sandbox sees an empty root filled with: the system's /usr and the few /etc files the dynamic loader and TLS need,
read-only; the Python installation, its virtual environment and the `nephelae` package, read-only; the caller's
mounts; a private /tmp in memory, its own /proc and a minimal /dev. It has no network (only a loopback of its own),
its own PID, IPC and UTS namespaces, a new session (so it cannot push keystrokes into the platform's terminal with
TIOCSTI), and dies with the platform. Every path is given as an argument: no shell anywhere.

As root, bubblewrap keeps most capabilities unless told otherwise; we drop them all but CAP_SETUID/CAP_SETGID, which
the worker uses once to become its leased uid (`nephelae.sandbox.identity`). As another user, bubblewrap makes a user
namespace, inside which no further user namespace may be made.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nephelae.errors import InvalidInput
from nephelae.sandbox.errors import SandboxSetupError
from nephelae.sandbox.identity import Identity
from nephelae.sandbox.policy import Limits, Mounts

SYSTEM_FILES = (
    "/usr",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/localtime",
)
ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # symlinks into /usr on merged-/usr systems
NAMESPACES = ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")
KERNEL_FILESYSTEMS = (
    "--proc",
    "/proc",
    "--dev",
    "/dev",
)  # the sandbox's own /proc, and /dev with null, zero, urandom...
AS_ROOT = ("--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID")
AS_USER = ("--unshare-user", "--disable-userns")
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own tmpfs, not the host's /tmp
SANDBOX_SHM = "/dev/shm"  # noqa: S108 - the same: multiprocessing's locks and queues need it writable
RESERVED = (
    Path(SANDBOX_TMP),
    Path("/proc"),
    Path("/dev"),
)  # built by the sandbox; /tmp's subdirectories may be mounted
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the `nephelae` package, wherever it is installed
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install bubblewrap)"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def find_bwrap() -> str:
    """The bubblewrap executable, or a SandboxSetupError saying how to install it."""
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxSetupError(f"bubblewrap (bwrap) is not on PATH, and user code only runs inside it; {INSTALL_HINT}")
    return found


def python_paths() -> tuple[Path, ...]:
    """The Python installation, its virtual environment and the `nephelae` package: what the worker needs to run."""
    found = {Path(path).resolve() for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    found.add(PACKAGE_DIR)
    return _outermost(path for path in found if path.exists())


def python_executable(visible: tuple[Path, ...]) -> str:
    """This interpreter's path, checked to be inside what the sandbox sees (a venv's bin/ is, via sys.prefix)."""
    directory = Path(sys.executable).parent.resolve()
    if not any(directory == root or root in directory.parents for root in visible):
        raise SandboxSetupError(f"{sys.executable} lies outside the Python installation {sys.prefix}; use a venv")
    return sys.executable


def worker_argv(config: Mapping[str, Any]) -> list[str]:
    """The command the sandbox runs: this Python, isolated (no cwd, no PYTHON* variables), on the worker module."""
    executable = python_executable((*python_paths(), Path("/usr")))
    return [executable, "-I", "-B", "-m", "nephelae.sandbox.worker", json.dumps(dict(config))]


def bwrap_command(
    mounts: Mounts, limits: Limits, *, workdir: Path, identity: Identity | None, argv: list[str]
) -> list[str]:
    """The full bubblewrap command running `argv` in `workdir`, with `mounts` (resolved) and the system files."""
    _check_mounts(mounts)
    flags = [*NAMESPACES, "--hostname", "sandbox", "--die-with-parent", "--new-session"]
    flags += AS_ROOT if identity is not None else AS_USER
    flags += KERNEL_FILESYSTEMS
    for scratch in (SANDBOX_TMP, SANDBOX_SHM):  # private, in memory, bounded
        flags += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", scratch]
    binds = [("--ro-bind", path) for path in _system_paths() + python_paths() + mounts.readonly]
    binds += [("--bind", path) for path in mounts.writable]
    binds.sort(key=lambda bind: len(bind[1].parts))  # a directory before what is mounted inside it
    flags += _parent_directories([path for _, path in binds])
    flags += _root_links()
    for option, path in binds:
        flags += [option, str(path), str(path)]
    return [find_bwrap(), *flags, "--chdir", str(workdir), "--", *argv]


def _check_mounts(mounts: Mounts) -> None:
    """Refuse mounts that would replace what the sandbox builds, or let user code change the interpreter."""
    for path in (*mounts.readonly, *mounts.writable):
        if path in RESERVED or any(parent in RESERVED[1:] for parent in path.parents):
            raise InvalidInput(f"the sandbox may not mount {path}: it has its own /tmp, /proc and /dev")
    for path in mounts.writable:
        for protected in _system_paths() + python_paths():
            if path == protected or protected in path.parents or path in protected.parents:
                raise InvalidInput(f"{path} may not be writable in the sandbox: it holds {protected}")


def _system_paths() -> tuple[Path, ...]:
    return tuple(Path(path) for path in SYSTEM_FILES if Path(path).exists())


def _root_links() -> list[str]:
    flags: list[str] = []
    for name in ROOT_LINKS:
        path = Path(name)
        if path.is_symlink():
            flags += ["--symlink", str(path.readlink()), name]
        elif path.is_dir():
            flags += ["--ro-bind", name, name]
    return flags


def _parent_directories(destinations: list[Path]) -> list[str]:
    """`--dir` for every parent of a mount point not already inside a mount, world-traversable.

    bubblewrap would copy the host's modes, and a 0700 parent such as /root would hide the Python installed under it
    from the sandbox's uid.
    """
    flags: list[str] = []
    created: set[Path] = set()
    for destination in destinations:
        for parent in reversed(destination.parents[:-1]):  # from the top, without "/"
            inside_mount = any(parent == other or other in parent.parents for other in destinations)
            if parent in created or inside_mount or parent in RESERVED:
                continue
            created.add(parent)
            flags += ["--perms", "0755", "--dir", str(parent)]
    return flags


def _outermost(paths: Iterable[Path]) -> tuple[Path, ...]:
    """The paths not inside another one of them, sorted: mounting /a and /a/b is mounting /a."""
    unique = sorted(set(paths))
    return tuple(path for path in unique if not any(other in path.parents for other in unique))


def sandbox_environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The whole environment of the sandbox, built from nothing: no token, database URL or secret of the platform.

    Numerical libraries get one thread each (a worker is one task at a time; threads also count against
    `max_processes`); `extra` (from the caller, never from the platform's own environment) is added last.
    """
    environment = {
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_TMP,
        "TMPDIR": SANDBOX_TMP,
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "HDF5_USE_FILE_LOCKING": "FALSE",
    }
    for name, value in (extra or {}).items():
        if not _ENV_NAME.fullmatch(name) or "\0" in value:
            raise InvalidInput(f"invalid sandbox environment variable {name!r}: names are [A-Za-z_][A-Za-z0-9_]*")
        environment[name] = value
    return environment


def visible_path(path: Path, mounts: Mounts, what: str) -> Path:
    """`path` resolved, checked to exist and to be visible inside the sandbox through `mounts` (resolved)."""
    resolved = path.resolve()
    if not resolved.exists():
        raise InvalidInput(f"{what} {path} does not exist")
    if not mounts.contains(resolved):
        raise InvalidInput(f"{what} {path} is not inside a directory mounted in the sandbox; add its directory")
    return resolved
