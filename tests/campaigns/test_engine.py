"""The campaign engine on a real Dask LocalCluster (worker processes) over a demo archive, on SQLite and PostgreSQL.

The task runner here is a small function of this module (`copy_runner`), injected through the engine's `runner`
argument: it writes a thinned copy of its first input under the task's key, as `execute.run_task` writes outputs
(temporary name, then rename; an existing output is reused), fails on a "poisoned" granule, and sleeps on request.
So these tests are about the engine, not the processors: planning, submission, reports, retries, cancel, retry,
exactly-once outputs, their registration in the catalog, and standing campaigns.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from sqlalchemy import Engine, select

from nephelae.accounts import Principal
from nephelae.accounts.projects import create_project
from nephelae.campaigns.engine import CampaignEngine
from nephelae.campaigns.execute import run_task
from nephelae.campaigns.lock import EngineLock
from nephelae.campaigns.service import (
    get_campaign,
    list_tasks,
    progress,
    request_cancel,
    request_retry,
    submit_campaign,
)
from nephelae.campaigns.spec import validate_spec
from nephelae.campaigns.tasks import TaskOutput, TaskRequest, TaskResult
from nephelae.catalog.access import find_granules, open_granule
from nephelae.catalog.datasets import add_dataset, get_dataset, list_datasets
from nephelae.catalog.indexer import index_dataset
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Campaign, CampaignTask, Granule
from nephelae.demo.archive import build_demo_archive
from tests.sandbox.conftest import bubblewrap  # noqa: F401  # bwrap installed when missing (session, autouse)

PROJECT = "oceanheatflux"
ALICE = Principal(account_id=1, username="alice", role="user", projects=(PROJECT,), address="127.0.0.1")
BOB = Principal(account_id=2, username="bob", role="user", projects=(), address="127.0.0.1")
DEMO_DAYS = 3
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no SQL of its own to check twice
L2P_FILES = 5 * DEMO_DAYS


def copy_runner(request: TaskRequest) -> TaskResult:
    """A stand-in for `execute.run_task`: a thinned copy of the first input, written once under the task's key."""
    began = time.perf_counter()
    from distributed import get_worker

    worker = get_worker().address
    parameters = request.parameters
    time.sleep(float(parameters.get("sleep", 0)))
    paths = [path for paths in request.inputs.values() for path in paths]
    poison, marker = parameters.get("poison"), parameters.get("while_exists")
    if poison and any(poison in path for path in paths) and (marker is None or Path(marker).exists()):
        try:
            raise ValueError(f"poisoned granule {Path(paths[0]).name}")
        except ValueError as error:
            trace = traceback.format_exc()
            return TaskResult(request.campaign_id, request.ordinal, request.run, worker, 0.0, (), str(error), trace)
    final = Path(request.output_dir) / request.key[:2] / f"{request.key}.nc"
    reused = final.exists()
    if not reused:
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.stem}.{os.getpid()}.tmp")
        with xr.open_dataset(paths[0]) as source:
            name = next(iter(source.data_vars))
            strides = {dim: slice(None, None, 20) for dim in source[name].dims if dim != "time"}
            source[[name]].isel(strides).load().to_netcdf(temporary)
        os.replace(temporary, final)
    Path(request.log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(request.log_path).write_text(f"task {request.ordinal} run {request.run}: {'reused' if reused else 'wrote'}\n")
    output = TaskOutput(str(final), final.stat().st_size, reused)
    seconds = time.perf_counter() - began
    return TaskResult(request.campaign_id, request.ordinal, request.run, worker, seconds, (output,))


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    build_demo_archive(root, days=DEMO_DAYS)
    return root


@dataclass
class World:
    """A home with the demo datasets registered and indexed, readable by alice's project."""

    settings: Settings
    sql: Engine
    archive: Path

    def session(self) -> Any:
        return session_factory(self.sql)()

    def engine(self, **options: Any) -> CampaignEngine:
        return CampaignEngine(self.settings, self.sql, runner=options.pop("runner", copy_runner), **options)

    def submit(self, principal: Principal = ALICE, **changes: Any) -> int:
        with self.session() as session:
            return submit_campaign(session, self.settings, principal, validate_spec(spec(**changes))).id

    def campaign(self, campaign_id: int) -> Campaign:
        with self.session() as session:
            return get_campaign(session, ALICE, campaign_id)

    def tasks(self, campaign_id: int) -> list[CampaignTask]:
        with self.session() as session:
            return list_tasks(session, ALICE, campaign_id)

    def wait(self, campaign_id: int, until: Callable[[Campaign], bool] | None = None, timeout: float = 90) -> Campaign:
        """The campaign once `until` holds (default: it is final)."""
        deadline = time.monotonic() + timeout
        while True:
            campaign = self.campaign(campaign_id)
            if (until or is_final)(campaign):
                return campaign
            if time.monotonic() > deadline:
                raise AssertionError(f"campaign {campaign_id} stuck: {progress(campaign)}")
            time.sleep(0.1)


def is_final(campaign: Campaign) -> bool:
    return campaign.status in ("completed", "completed_with_failures", "failed", "cancelled")


def spec(**changes: Any) -> dict[str, Any]:
    """A campaign over the demo L2P swaths (five a day), with `changes` applied (parameters merged)."""
    parameters = changes.pop("parameters", {})
    return {
        "name": "thin-l2p",
        "inputs": {"sst": {"dataset": "demo-l2p-sst"}},
        "processor": "nephelae.processors:time_mean",
        "parameters": parameters,
        "output": {"dataset": "alice-thin-l2p"},
        "retries": 1,
    } | changes


def register_demo(settings: Settings, sql: Engine, archive: Path, *, datasets: tuple[str, ...]) -> None:
    with session_factory(sql)() as session:
        create_project(session, PROJECT, actor="setup")
        for dataset_id in datasets:
            add_dataset(session, dataset_id, str(archive / dataset_id), "**/*.nc", projects=[PROJECT], actor="setup")
    for dataset_id in datasets:
        index_dataset(sql, dataset_id, workers=1)


def make_world(settings: Settings, sql: Engine, demo_root: Path, tmp_path: Path) -> World:
    archive = tmp_path / "archive"
    shutil.copytree(demo_root, archive)
    settings = settings.model_copy(update={"dask_workers": 2, "dask_threads_per_worker": 1})
    register_demo(settings, sql, archive, datasets=("demo-l2p-sst", "demo-l4-sst"))
    return World(settings, sql, archive)


@pytest.fixture
def world(settings: Settings, engine: Engine, demo_root: Path, tmp_path: Path) -> World:
    return make_world(settings, engine, demo_root, tmp_path)


@pytest.fixture
def running(world: World) -> Iterator[CampaignEngine]:
    """The engine of the world's home, on its own LocalCluster of two worker processes."""
    engine = world.engine()
    engine.start()
    yield engine
    engine.stop()


def output_files(world: World) -> dict[str, int]:
    """The output dataset's files by name, with their modification times (ns)."""
    root = world.settings.campaigns_dir / "alice-thin-l2p"
    return {path.name: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def test_a_campaign_runs_to_completed_and_its_outputs_become_a_dataset(world: World, running: CampaignEngine) -> None:
    campaign = world.wait(world.submit())
    assert campaign.status == "completed", progress(campaign)
    assert (campaign.task_count, campaign.done_count, campaign.planning_finished) == (L2P_FILES, L2P_FILES, True)
    tasks = world.tasks(campaign.id)
    assert [task.ordinal for task in tasks] == list(range(L2P_FILES))
    assert all(task.status == "done" and task.attempts == 1 and task.worker for task in tasks)
    assert all(task.started_at and task.finished_at and task.started_at <= task.finished_at for task in tasks)
    assert len({task.key for task in tasks}) == L2P_FILES
    assert all(len(task.outputs) == 1 and not task.outputs[0]["reused"] for task in tasks)
    assert all(Path(task.log_path or "").read_text().startswith(f"task {task.ordinal}") for task in tasks)
    assert sorted(output_files(world)) == sorted(f"{task.key}.nc" for task in tasks)
    with world.session() as session:
        derived = {dataset.id: dataset for dataset in list_datasets(session, ALICE)}["alice-thin-l2p"]
        assert derived.owner == "alice" and derived.granule_count == L2P_FILES and derived.unreadable_count == 0
        assert derived.provenance["campaigns"] == [campaign.id]
        assert derived.time_start is not None
        assert "alice-thin-l2p" not in {dataset.id for dataset in list_datasets(session, BOB)}
    summary = progress(campaign)
    assert summary["fraction_done"] == 1.0 and summary["counts"]["done"] == L2P_FILES


def test_a_zarr_campaign_leaves_a_catalogued_readable_dataset_of_stores(world: World) -> None:
    engine = world.engine(runner=run_task)
    engine.start()
    try:
        campaign = world.wait(world.submit(output={"dataset": "alice-thin-l2p", "format": "zarr"}), timeout=180)
    finally:
        engine.stop()
    assert campaign.status == "completed", progress(campaign)
    stores = sorted((world.settings.campaigns_dir / "alice-thin-l2p").glob("*/*.zarr"))
    assert len(stores) == L2P_FILES and all((store / ".zmetadata").is_file() for store in stores)
    with world.session() as session:
        derived = {dataset.id: dataset for dataset in list_datasets(session, ALICE)}["alice-thin-l2p"]
        assert derived.granule_count == L2P_FILES and derived.unreadable_count == 0
        first = next(find_granules(session, "alice-thin-l2p"))
        with open_granule(get_dataset(session, "alice-thin-l2p"), first) as opened:
            assert opened["sea_surface_temperature"].attrs["cell_methods"] == "time: mean"
            assert np.isfinite(opened["sea_surface_temperature"].values).any()


def test_a_poisoned_granule_is_retried_then_failed_while_the_others_finish(
    world: World, running: CampaignEngine
) -> None:
    campaign = world.wait(world.submit(parameters={"poison": "20200102"}, retries=2))
    assert campaign.status == "completed_with_failures", progress(campaign)
    failed = [task for task in world.tasks(campaign.id) if task.status == "failed"]
    assert len(failed) == 5 and campaign.failed_count == 5 and campaign.done_count == L2P_FILES - 5
    assert all(task.attempts == 3 and "poisoned granule" in (task.error or "") for task in failed)
    assert all("ValueError" in (task.traceback or "") for task in failed)


def test_retry_reruns_only_the_failed_tasks(world: World, running: CampaignEngine, tmp_path: Path) -> None:
    marker = tmp_path / "still-broken"  # the granules fail while it exists: the user fixes the cause, then retries
    marker.touch()
    campaign_id = world.submit(parameters={"poison": "20200103", "while_exists": str(marker)}, retries=0)
    assert world.wait(campaign_id).status == "completed_with_failures"
    before = {task.ordinal: task for task in world.tasks(campaign_id)}
    written = output_files(world)
    marker.unlink()
    with world.session() as session:
        request_retry(session, ALICE, campaign_id)
    campaign = world.wait(campaign_id, lambda campaign: is_final(campaign) and campaign.request is None)
    assert campaign.status == "completed", progress(campaign)
    after = {task.ordinal: task for task in world.tasks(campaign_id)}
    rerun = {ordinal for ordinal, task in before.items() if task.status == "failed"}
    assert len(rerun) == 5 and all(before[ordinal].attempts == 1 for ordinal in rerun)
    assert all(
        after[ordinal].finished_at == task.finished_at for ordinal, task in before.items() if ordinal not in rerun
    )
    assert all(after[ordinal].status == "done" and after[ordinal].attempts == 1 for ordinal in rerun)
    assert {name: mtime for name, mtime in output_files(world).items() if name in written} == written
    assert len(output_files(world)) == L2P_FILES


@SQLITE_ONLY
def test_cancel_mid_run(world: World, running: CampaignEngine) -> None:
    campaign_id = world.submit(parameters={"sleep": 0.5})
    world.wait(campaign_id, lambda campaign: campaign.done_count >= 2)
    with world.session() as session:
        request_cancel(session, ALICE, campaign_id)
    campaign = world.wait(campaign_id)
    assert campaign.status == "cancelled" and campaign.request is None
    statuses = [task.status for task in world.tasks(campaign_id)]
    assert statuses.count("done") >= 2 and "cancelled" in statuses
    assert set(statuses) <= {"done", "cancelled"}
    assert campaign.cancelled_count == statuses.count("cancelled")


def sandboxes_of(output_dir: Path) -> list[int]:
    """PIDs of the processes whose command line names the output dataset's staging area: its sandboxes."""
    marker = str(output_dir / ".staging").encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@SQLITE_ONLY
def test_cancelling_stops_the_sandboxes_of_running_tasks(world: World) -> None:
    workspace = world.settings.workspaces_dir / "alice"
    workspace.mkdir(parents=True)
    (workspace / "slow.py").write_text("import time\n\ndef process(inputs, parameters):\n    time.sleep(600)\n")
    engine = world.engine(runner=run_task)
    engine.start()
    try:
        campaign_id = world.submit(processor="slow.py:process", resources={"timeout_seconds": 900})
        world.wait(campaign_id, lambda campaign: campaign.running_count >= 2, timeout=120)
        output_dir = world.settings.campaigns_dir / "alice-thin-l2p"
        deadline = time.monotonic() + 60
        while len(sandboxes_of(output_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sandboxes_of(output_dir), "the sandboxed workers never started"
        with world.session() as session:
            request_cancel(session, ALICE, campaign_id)
        assert world.wait(campaign_id, timeout=60).status == "cancelled"
        deadline = time.monotonic() + 20
        while sandboxes_of(output_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sandboxes_of(output_dir) == []  # killed, not left sleeping for ten minutes
    finally:
        engine.stop()


@SQLITE_ONLY
def test_an_identical_campaign_reuses_every_output(world: World, running: CampaignEngine) -> None:
    first = world.wait(world.submit())
    written = output_files(world)
    time.sleep(0.05)
    second = world.wait(world.submit())
    assert first.status == second.status == "completed"
    assert output_files(world) == written
    assert all(task.outputs[0]["reused"] for task in world.tasks(second.id))
    with world.session() as session:
        granules = session.scalars(select(Granule).where(Granule.dataset_id == "alice-thin-l2p")).all()
    assert len(granules) == L2P_FILES


def test_a_standing_campaign_processes_granules_indexed_later(world: World, running: CampaignEngine) -> None:
    late = hide_day_three(world)
    campaign_id = world.submit(follow=True)
    campaign = world.wait(campaign_id, lambda campaign: campaign.done_count == L2P_FILES - len(late))
    assert campaign.status == "running" and campaign.planning_finished
    show(world, late)
    campaign = world.wait(campaign_id, lambda campaign: campaign.done_count == L2P_FILES, timeout=60)
    assert campaign.task_count == L2P_FILES and campaign.status == "running"
    with world.session() as session:
        request_cancel(session, ALICE, campaign_id)
    assert world.wait(campaign_id).status == "cancelled"


@SQLITE_ONLY
def test_a_standing_campaign_by_day_adds_the_new_days(world: World, running: CampaignEngine) -> None:
    late = hide_day_three(world)
    campaign_id = world.submit(follow=True, group_by="day")
    world.wait(campaign_id, lambda campaign: campaign.done_count == 2)
    show(world, late)
    campaign = world.wait(campaign_id, lambda campaign: campaign.done_count == 3, timeout=60)
    assert [task.label for task in world.tasks(campaign_id)] == ["2020-01-01", "2020-01-02", "2020-01-03"]
    assert campaign.task_count == 3  # the days already done were planned again, and kept once (same keys)


def hide_day_three(world: World) -> list[Path]:
    """The swaths of the third day renamed out of the pattern, and the dataset indexed without them."""
    late = sorted((world.archive / "demo-l2p-sst").rglob("2020/003/*.nc"))
    for path in late:
        path.rename(path.with_suffix(".later"))
    index_dataset(world.sql, "demo-l2p-sst", workers=1)
    return late


def show(world: World, late: list[Path]) -> None:
    for path in late:
        path.with_suffix(".later").rename(path)
    index_dataset(world.sql, "demo-l2p-sst", workers=1)


@SQLITE_ONLY
def test_a_campaign_grouped_by_day_over_two_inputs(world: World, running: CampaignEngine) -> None:
    document = {
        "inputs": {
            "sst": {"dataset": "demo-l4-sst", "time": "2020-01-01/2020-01-02T12:00:00Z"},
            "swaths": {"dataset": "demo-l2p-sst"},
        },
        "group_by": "day",
    }
    campaign = world.wait(world.submit(**document))
    assert campaign.status == "completed" and campaign.task_count == 2
    tasks = world.tasks(campaign.id)
    assert [task.label for task in tasks] == ["2020-01-01", "2020-01-02"]
    assert [len(task.inputs["swaths"]) for task in tasks] == [5, 5]


def test_a_stopped_engine_resumes_where_it_stood(world: World) -> None:
    """Stop mid-run (as a crash would leave it: tasks running in SQL), start a new engine: nothing is done twice."""
    engine = world.engine()
    engine.start()
    campaign_id = world.submit(parameters={"sleep": 0.4})
    world.wait(campaign_id, lambda campaign: campaign.done_count >= 3)
    engine.stop()
    stopped = world.campaign(campaign_id)
    assert stopped.status == "running"
    done_before = {t.ordinal: t.finished_at for t in world.tasks(campaign_id) if t.status == "done"}
    again = world.engine()
    again.start()
    try:
        campaign = world.wait(campaign_id)
    finally:
        again.stop()
    assert campaign.status == "completed" and campaign.done_count == L2P_FILES
    tasks = {task.ordinal: task for task in world.tasks(campaign_id)}
    assert all(tasks[ordinal].finished_at == finished for ordinal, finished in done_before.items())
    assert all(task.attempts == 1 for task in tasks.values())
    assert campaign.finished_at is not None and campaign.finished_at <= dt.datetime.now(dt.UTC)


def test_one_engine_per_database_the_other_stands_by(world: World) -> None:
    first, second = EngineLock(world.settings, world.sql), EngineLock(world.settings, world.sql)
    assert first.acquire() and first.acquire()  # held, and still held
    assert not second.acquire()
    first.release()
    second._next_try = 0.0  # it retries every few seconds: now
    assert second.acquire()
    second.release()
