"""Inside the sandbox, before any user code: resource limits, then the switch to the sandbox's own uid.

Limits are set by the sandboxed process itself rather than by the platform before the exec because the platform is
multi-threaded (Dask, the web server), where a `preexec_fn` may deadlock. They are set before user code runs and hard
limits cannot be raised back without privileges, which the process gives up here. Standard library only.
"""

from __future__ import annotations

import math
import os
import resource
from typing import Any

MIB = 1 << 20


def apply_limits(limits: dict[str, Any]) -> None:
    """Set the rlimits described by `limits` (the worker configuration's "limits") on this process and its children.

    RLIMIT_CPU gets `cpu_hard` as hard limit (a whole worker's budget); `cpu_soft` is the first call's limit, moved
    forward by `arm_cpu_limit` before each call. Core dumps are off: they would land in the working directory.
    """
    _set(resource.RLIMIT_AS, limits["memory_mb"] * MIB)
    _set(resource.RLIMIT_FSIZE, limits["max_file_mb"] * MIB)
    _set(resource.RLIMIT_NPROC, limits["max_processes"])
    _set(resource.RLIMIT_CORE, 0)
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_soft"], limits["cpu_hard"]))


def _set(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


def arm_cpu_limit(cpu_seconds: int) -> float:
    """Allow this process `cpu_seconds` more of CPU time (up to its hard limit); returns the CPU time used so far.

    The kernel sends SIGXCPU at the soft limit, which kills Python, and SIGKILL at the hard one.
    """
    used = cpu_time_used()
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used) + cpu_seconds  # whole seconds: this call gets at least `cpu_seconds`
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    return used


def cpu_time_used() -> float:
    """CPU seconds (user + system) this process has used, as RLIMIT_CPU counts them."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drop_identity(uid: int | None, gid: int | None) -> None:
    """Become `uid`/`gid` for good, with no supplementary groups (a no-op when None: a user namespace was used).

    Changing from uid 0 to another clears every capability bubblewrap had left (CAP_SETUID and CAP_SETGID, for this);
    no_new_privs, set by bubblewrap, keeps set-uid programs from giving any back.
    """
    if uid is None or gid is None:
        return
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise SystemExit(f"sandbox: could not switch to uid {uid}")
