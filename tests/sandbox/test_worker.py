"""The long-lived sandboxed worker: real processing, reuse across calls, errors, output, crashes, limits, timeouts."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nephelae.errors import InvalidInput
from nephelae.sandbox import Limits, SandboxCrashed, SandboxedWorker, SandboxError, SandboxTimeout, runner
from tests.sandbox.layout import Home


def test_a_processor_reads_a_real_granule_and_writes_its_output(worker: SandboxedWorker, home: Home) -> None:
    output = home.output / "subset.nc"
    result = worker.call(home.script, "sst_mean", {"granule": home.granule, "output": output})
    with xr.open_dataset(home.granule) as dataset:
        expected = float(np.nanmean(dataset["analysed_sst"].values))
    assert result == {"mean": pytest.approx(expected), "output": str(output)}
    with xr.open_dataset(output) as subset:
        assert subset["analysed_sst"].shape == (1, 10, 10)


def test_fifty_calls_share_one_worker_and_one_import(worker: SandboxedWorker, home: Home) -> None:
    first = worker.call(home.script, "imports", {})
    pid = worker.pid
    results = [worker.call(home.script, "imports", {}) for _ in range(50)]
    assert worker.pid == pid
    assert all(result == first == {"imports": 1, "pid": first["pid"]} for result in results)


def test_an_edited_script_is_imported_again(worker: SandboxedWorker, home: Home) -> None:
    assert worker.call(home.script, "imports", {})["imports"] == 1
    home.script.write_text(home.script.read_text() + "\nIMPORTS += 10\n")
    assert worker.call(home.script, "imports", {})["imports"] == 11


def test_user_errors_come_back_with_the_users_traceback(worker: SandboxedWorker, home: Home) -> None:
    with pytest.raises(SandboxError) as raised:
        worker.call(home.script, "fail", {"value": 7})
    error = raised.value
    assert type(error) is SandboxError
    assert error.detail == "ValueError: granule 7 has no SST"
    assert f'File "{home.script}"' in error.traceback
    assert "in check" in error.traceback and "in fail" in error.traceback
    assert "nephelae/sandbox" not in error.traceback  # the worker's own frames are left out
    assert worker.call(home.script, "imports", {})["imports"] == 1  # the worker survives user errors


def test_printing_does_not_break_the_protocol_and_becomes_the_log(worker: SandboxedWorker, home: Home) -> None:
    result = worker.run(home.script, "noisy", {"value": 41})
    assert result.value == 42
    for line in ("hello from print", "to stderr", "from a shell child"):
        assert line in result.log
    assert worker.run(home.script, "imports", {}).log == ""  # each call has its own log


def test_multiprocessing_primitives_work(worker: SandboxedWorker, home: Home) -> None:
    assert worker.call(home.script, "multiprocessing_lock", {}) == "locked"


def test_missing_functions_and_unserialisable_values_are_errors(worker: SandboxedWorker, home: Home) -> None:
    with pytest.raises(SandboxError, match="defines no function nothing_here"):
        worker.call(home.script, "nothing_here", {})
    with pytest.raises(SandboxError, match="cannot be sent back"):
        worker.call(home.script, "returns_object", {})
    with pytest.raises(InvalidInput, match="JSON-serialisable"):
        worker.call(home.script, "imports", {"value": object()})
    with pytest.raises(InvalidInput, match="not inside a directory mounted"):
        worker.call(home.bob / "secret.txt", "imports", {})


@pytest.mark.parametrize(
    ("function", "kwargs", "status"),
    [("exit_hard", {"status": 7}, 7), ("segfault", {}, 128 + signal.SIGSEGV)],
)
def test_a_crash_is_reported_and_the_next_call_restarts(
    worker: SandboxedWorker, home: Home, function: str, kwargs: dict[str, int], status: int
) -> None:
    worker.call(home.script, "imports", {})
    pid = worker.pid
    with pytest.raises(SandboxCrashed) as raised:
        worker.call(home.script, function, kwargs)
    assert raised.value.exit_status == status
    if function == "segfault":
        assert "Segmentation fault" in raised.value.log  # faulthandler's report reaches the log
    assert worker.call(home.script, "imports", {})["imports"] == 1
    assert worker.pid != pid


def _sandbox_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue  # exited meanwhile
    return found


def test_a_timeout_kills_every_process_and_the_next_call_gets_a_fresh_worker(
    worker: SandboxedWorker, home: Home
) -> None:
    worker.call(home.script, "imports", {})
    pid = worker.pid
    marker = f"{300 + os.getpid() % 1000}.{time.time_ns() % 10**6}"
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match=r"did not finish within 1\.5 s"):
        worker.call(home.script, "spin_forever", {"marker": marker}, timeout=1.5)
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    assert _sandbox_processes(marker) == []  # the child in its own session died too
    assert worker.call(home.script, "imports", {})["imports"] == 1
    assert worker.pid != pid


def test_memory_beyond_the_limit_cannot_be_allocated(worker: SandboxedWorker, home: Home) -> None:
    with pytest.raises(SandboxError) as raised:
        worker.call(home.script, "allocate", {"megabytes": 2048})
    assert isinstance(raised.value, SandboxCrashed) or "MemoryError" in raised.value.detail
    assert worker.call(home.script, "allocate", {"megabytes": 64}) == 64 << 20


def test_the_cpu_time_limit_kills_a_call_that_burns_too_much(home: Home) -> None:
    limits = Limits(memory_mb=768, cpu_seconds=1, timeout_seconds=30, max_processes=16, max_file_mb=64)
    with SandboxedWorker(home.mounts, limits, workdir=home.scratch) as worker:
        assert worker.call(home.script, "burn_cpu", {"seconds": 0.2}) >= 0.2
        with pytest.raises(SandboxCrashed, match="CPU time limit") as raised:
            worker.call(home.script, "burn_cpu", {"seconds": 5})
        assert raised.value.exit_status == 128 + signal.SIGXCPU


def test_a_worker_is_renewed_before_its_cpu_budget_runs_out(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "CPU_BUDGET_CALLS", 3)  # a worker may use 3 s of CPU in all
    limits = Limits(memory_mb=768, cpu_seconds=1, timeout_seconds=30, max_processes=16, max_file_mb=64)
    with SandboxedWorker(home.mounts, limits, workdir=home.scratch) as worker:
        pids = set()
        for _ in range(4):  # 3.2 s of CPU: more than one worker's budget, each call within its own second
            assert worker.call(home.script, "burn_cpu", {"seconds": 0.8}) >= 0.8
            pids.add(worker.pid)
        assert len(pids) > 1


def test_a_closed_worker_refuses_calls(home: Home) -> None:
    worker = SandboxedWorker(home.mounts, Limits(), workdir=home.scratch)
    worker.call(home.script, "imports", {})
    pid = worker.pid
    assert pid is not None
    worker.close()
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(InvalidInput, match="closed"):
        worker.call(home.script, "imports", {})
