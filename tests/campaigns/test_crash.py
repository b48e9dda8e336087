"""Crashes: a Dask worker killed mid-campaign, and the server killed (kill -9, with its workers) then restarted.

(a) An external `dask scheduler` and two `dask worker` processes on loopback, as an operator runs them; the engine in
this process, with the test runner of `test_engine`. One worker is killed with SIGKILL while it runs a task: the
campaign still completes, with one output per task.

(b) `nephelae serve` as a subprocess (real uvicorn, its engine and LocalCluster, a SQLite home), a campaign of twenty
half-second tasks of a sandboxed workspace script, run through `execute.run_task`. The server's process group (server
and Dask workers) is killed mid-campaign with SIGKILL, a new server started: the campaign resumes and completes, the
outputs finished before the kill are kept as they were (same mtime), none is written twice, no temporary file is
left, and there are exactly as many tasks as granules.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from nephelae.campaigns.service import progress
from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, upgrade
from nephelae.demo.archive import build_demo_archive
from tests.campaigns.test_engine import L2P_FILES, World, demo_root, make_world, register_demo

__all__ = ["demo_root"]  # the module's fixture, used here too

REPO = Path(__file__).resolve().parents[2]
SERVER_DAYS = 4
SERVER_TASKS = 5 * SERVER_DAYS  # five swaths a day
BIN = Path(sys.executable).parent
SLOW_SCRIPT = """\
import time


def process(inputs, parameters):
    time.sleep(parameters["seconds"])
    swath = inputs["sst"]
    return swath[["sea_surface_temperature"]].isel(nj=slice(None, None, 40), ni=slice(None, None, 40))
"""


def spawn(arguments: list[str], log: Path, **environment: str) -> subprocess.Popen[bytes]:
    """A process in a session of its own (so that its whole group can be killed), its output in `log`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **environment}
    with log.open("ab") as output:
        return subprocess.Popen(arguments, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# (a) A worker of an external cluster killed mid-campaign.


@pytest.fixture
def external_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """`dask scheduler` and two `dask worker` processes (one thread each) on 127.0.0.1."""
    scheduler_file = tmp_path / "scheduler.json"
    local = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    scheduler = spawn(
        [str(BIN / "dask"), "scheduler", *local, "--scheduler-file", str(scheduler_file)], tmp_path / "s.log"
    )
    processes = [scheduler]
    try:
        wait_for(scheduler_file.exists, 30, "the scheduler")
        address = wait_for(lambda: json.loads(scheduler_file.read_text() or "{}").get("address"), 10, "its address")
        for number in range(2):
            arguments = [str(BIN / "dask"), "worker", address, *local, "--nthreads", "1", "--name", f"w{number}"]
            processes.append(spawn(arguments, tmp_path / f"w{number}.log"))
        yield address, processes[1:]
    finally:
        for process in processes:
            kill_group(process)


def test_a_worker_killed_mid_campaign_does_not_stop_it(
    settings: Settings,
    engine: Engine,
    demo_root: Path,
    tmp_path: Path,
    external_cluster: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    address, workers = external_cluster
    world = make_world(settings, engine, demo_root, tmp_path)
    world = World(world.settings.model_copy(update={"dask_scheduler": address}), world.sql, world.archive)
    running = world.engine()
    running.start()
    try:
        campaign_id = world.submit(parameters={"sleep": 0.5})
        world.wait(campaign_id, lambda campaign: campaign.done_count >= 2)
        victim = wait_for(lambda: running_worker(world, campaign_id), 30, "a task running")
        assert running.cluster is not None
        names = {address: info["name"] for address, info in running.cluster.client.scheduler_info()["workers"].items()}
        assert len(names) == 2
        kill_group(workers[int(str(names[victim]).removeprefix("w"))])
        campaign = world.wait(campaign_id, timeout=120)
        survivors = running.cluster.threads()
    finally:
        running.stop()
    assert campaign.status == "completed", progress(campaign)
    assert victim not in survivors and len(survivors) == 1
    tasks = world.tasks(campaign_id)
    assert len(tasks) == L2P_FILES and all(task.status == "done" and task.attempts <= 2 for task in tasks)
    outputs = sorted(path.name for path in (world.settings.campaigns_dir / "alice-thin-l2p").rglob("*.nc"))
    assert outputs == sorted(f"{task.key}.nc" for task in tasks)


def running_worker(world: World, campaign_id: int) -> str | None:
    return next((task.worker for task in world.tasks(campaign_id) if task.status == "running" and task.worker), None)


# (b) The server killed with its workers, then restarted.


@pytest.fixture
def home(tmp_path: Path, demo_root_4: Path) -> Settings:
    """A SQLite home with twenty demo L2P swaths indexed, alice's project, and a slow script in her workspace."""
    settings = load_settings(tmp_path / "home", dask_workers=2)
    prepare_home(settings)
    sql = make_engine(settings.database)
    try:
        upgrade(sql)
        archive = tmp_path / "archive"
        shutil.copytree(demo_root_4 / "demo-l2p-sst", archive / "demo-l2p-sst")
        register_demo(settings, sql, archive, datasets=("demo-l2p-sst",))
    finally:
        sql.dispose()
    script = settings.workspaces_dir / "alice" / "slow.py"
    script.parent.mkdir(parents=True)
    script.write_text(SLOW_SCRIPT)
    return settings


@pytest.fixture(scope="module")
def demo_root_4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo4")
    build_demo_archive(root, days=SERVER_DAYS)
    return root


def serve(settings: Settings, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`nephelae serve` on a free port of loopback, once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    arguments = [str(BIN / "nephelae"), "serve", "--home", str(settings.home), "--port", str(port)]
    server = spawn(arguments, log, NEPHELAE_DASK_WORKERS="2")
    url = f"http://127.0.0.1:{port}/api/v1/health"
    wait_for(lambda: server.poll() is not None or _answers(url), 60, "the server")
    assert server.poll() is None, log.read_text()
    return server, url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def outputs(settings: Settings) -> dict[str, int]:
    """Every file under the output dataset's root (hidden ones included), with its mtime."""
    root = settings.campaigns_dir / "alice-slow"
    return {str(path.relative_to(root)): path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def test_the_server_killed_mid_campaign_resumes_it_after_a_restart(home: Settings, tmp_path: Path) -> None:
    sql = make_engine(home.database)
    world = World(home, sql, tmp_path / "archive")
    log = tmp_path / "server.log"
    server, _ = serve(home, log)
    try:
        campaign_id = world.submit(
            name="slow",
            processor="slow.py:process",
            parameters={"seconds": 0.5},
            output={"dataset": "alice-slow"},
        )
        world.wait(campaign_id, lambda campaign: campaign.done_count >= 6, timeout=120)
        kill_group(server)  # SIGKILL to the server and its Dask workers, mid-campaign
        killed = world.campaign(campaign_id)
        before = {name: mtime for name, mtime in outputs(home).items() if name.endswith(".nc")}
        assert killed.status == "running" and killed.done_count < SERVER_TASKS, progress(killed)
        assert len(before) >= killed.done_count >= 6
        server, _ = serve(home, log)
        campaign = world.wait(campaign_id, timeout=180)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(server)
        sql.dispose()
    assert campaign.status == "completed", progress(campaign)
    tasks = world.tasks(campaign_id)
    assert campaign.task_count == len(tasks) == SERVER_TASKS == len({task.key for task in tasks})
    assert [task.ordinal for task in tasks] == list(range(SERVER_TASKS))
    after = outputs(home)
    finals = {name: mtime for name, mtime in after.items() if not Path(name).name.startswith(".")}
    assert sorted(Path(name).name for name in finals) == sorted(f"{task.key}.nc" for task in tasks)
    assert all(finals[name] == mtime for name, mtime in before.items()), "an output was rewritten"
    assert not [name for name in after if name.endswith(".tmp")], after
    reused = [task for task in tasks if task.outputs[0]["reused"]]
    assert all(task.status == "done" for task in tasks)
    assert len(reused) <= len(before)
