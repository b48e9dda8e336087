"""What a sandbox may use: resource limits and the host directories it sees.

Both are plain values, built by the caller from a campaign spec or a command line and passed down; the sandbox adds
nothing of the host beyond the system files Python needs (see `nephelae.sandbox.bwrap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nephelae.errors import InvalidInput
from nephelae.sandbox.errors import SandboxSetupError

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed process tree.

    `memory_mb` caps the address space of each process (RLIMIT_AS, so a large allocation fails with MemoryError);
    `cpu_seconds` is the CPU time one call may use (RLIMIT_CPU); `timeout_seconds` the wall-clock time of one call,
    after which every process of the sandbox is killed; `max_processes` caps processes and threads (RLIMIT_NPROC, so
    a fork bomb stops there); `max_file_mb` caps the size of any file written (RLIMIT_FSIZE) and of the private /tmp.
    """

    memory_mb: int = 2048
    cpu_seconds: int = 600
    timeout_seconds: float = 900
    max_processes: int = 64
    max_file_mb: int = 4096

    def __post_init__(self) -> None:
        for name in ("memory_mb", "cpu_seconds", "timeout_seconds", "max_processes", "max_file_mb"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"sandbox limit {name} must be positive, not {getattr(self, name)!r}")

    @property
    def tmp_bytes(self) -> int:
        """Size of the sandbox's private /tmp: it lives in memory, so no more than the memory limit."""
        return min(self.memory_mb, self.max_file_mb) * MIB


@dataclass(frozen=True)
class Mounts:
    """Host directories visible in the sandbox, at the same paths: `readonly` ones (archive roots, the workspace of a
    campaign) and `writable` ones (the task's output and scratch directories). Nothing else of the host is visible
    but the system files Python needs, read-only.
    """

    readonly: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()

    def resolved(self) -> Mounts:
        """The same mounts as absolute, symlink-free paths, checked: each exists, none is `/`, none is given twice."""
        readonly = tuple(_existing(path) for path in self.readonly)
        writable = tuple(_existing(path) for path in self.writable)
        twice = set(readonly) & set(writable)
        if twice:
            raise InvalidInput(f"{', '.join(map(str, sorted(twice)))} mounted both read-only and writable; pick one")
        return Mounts(readonly=tuple(dict.fromkeys(readonly)), writable=tuple(dict.fromkeys(writable)))

    def contains(self, path: Path) -> bool:
        """Whether `path` (absolute, resolved) is visible in the sandbox through one of these mounts."""
        return any(path == root or root in path.parents for root in (*self.readonly, *self.writable))


def _existing(path: Path) -> Path:
    resolved = path.resolve()
    if resolved == Path("/"):
        raise InvalidInput("the sandbox may not mount / (it would see every workspace); mount the directories it needs")
    if not resolved.exists():
        raise SandboxSetupError(f"sandbox mount {path} does not exist; create it or leave it out of the mounts")
    return resolved
