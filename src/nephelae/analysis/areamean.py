"""The area-mean time series of a regular grid, fast: each granule's slab read and reduced in a pool of processes.

netCDF4/HDF5 is not thread-safe, so the parallelism is in processes (forkserver: a server's threads are never
forked); they are started once per process and kept. A few granules are reduced here directly, as a pool would cost
more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import numpy.typing as npt

from nephelae.analysis.slab import FileSums, Slab, reduce_files, worker_ready

# Granules reduced in the calling process: about 10 ms each for a 60 x 40 degree box of a 0.25 degree grid, while
# starting the pool costs seconds once per process (each worker imports the program's main module).
INLINE_BELOW = 64
TASKS_PER_WORKER = 4  # batches per worker: fewer round trips than one per file, yet balanced

_pool: ProcessPoolExecutor | None = None
_started: list[Future[int]] = []  # one call per worker, done once every worker has started
_pool_lock = threading.Lock()


def worker_count() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def start_pool() -> list[Future[int]]:
    """Start the worker processes (once per process) without waiting; the futures are done when they are ready."""
    global _pool
    with _pool_lock:
        if _pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["nephelae.analysis.slab"])  # imported once, in the fork server
            _pool = ProcessPoolExecutor(max_workers=worker_count(), mp_context=context)
            _started.extend(_pool.submit(worker_ready) for _ in range(worker_count()))
        return list(_started)


def _ready_pool() -> ProcessPoolExecutor | None:
    """The pool if its workers are up; else None, and they are being started for the next call."""
    started = start_pool()
    if not all(future.done() for future in started):
        return None
    return _pool


def area_mean_sums(paths: Sequence[str], slab: Slab, variables: tuple[str, ...]) -> list[FileSums]:
    """The reduced granules, in the order of `paths`."""
    pool = None if len(paths) < INLINE_BELOW or worker_count() == 1 else _ready_pool()
    if pool is None:  # few granules, or the workers are still starting (seconds, once): do not wait for them
        return reduce_files(list(paths), slab, variables)
    size = max(1, -(-len(paths) // (worker_count() * TASKS_PER_WORKER)))
    batches = [list(paths[start : start + size]) for start in range(0, len(paths), size)]
    futures = [pool.submit(reduce_files, batch, slab, variables) for batch in batches]
    return [reduced for future in futures for reduced in future.result()]


def combine(
    sums: Sequence[FileSums], variables: tuple[str, ...]
) -> tuple[npt.NDArray[np.datetime64], dict[str, npt.NDArray[np.float64]]]:
    """Times and means per variable, over all granules (NaN where a step has no valid cell)."""
    times = np.concatenate([part.times for part in sums]).astype("datetime64[ns]")
    means = {}
    for name in variables:
        total = np.concatenate([part.sums[name] for part in sums])
        weight = np.concatenate([part.weights[name] for part in sums])
        with np.errstate(invalid="ignore", divide="ignore"):
            means[name] = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)
    return times, means
