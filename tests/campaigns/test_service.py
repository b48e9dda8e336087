"""The campaign service on SQLite and PostgreSQL: every check of a submission with its error, the processor's identity,
the output dataset, who sees which campaign, task paging, logs, cancel and retry requests, progress.

The catalog is made of granule rows (as an indexing leaves them); no engine runs here.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from nephelae import __version__
from nephelae.accounts import Principal
from nephelae.accounts.projects import create_project
from nephelae.campaigns.service import (
    file_sha256,
    get_campaign,
    list_campaigns,
    list_tasks,
    processor_identity,
    progress,
    request_cancel,
    request_retry,
    submit_campaign,
    task_log,
)
from nephelae.campaigns.spec import ProcessorRef, validate_spec
from nephelae.catalog.datasets import add_dataset, get_dataset, list_datasets, refresh_summary
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Campaign, CampaignTask, Dataset, Granule
from nephelae.errors import Conflict, InvalidInput, NotFound, PermissionDenied

DAY0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
ALICE = Principal(account_id=1, username="alice", role="user", projects=("oceanheatflux",), address="127.0.0.1")
BOB = Principal(account_id=2, username="bob", role="user", projects=("glaciers",), address="127.0.0.1")
ADMIN = Principal(account_id=3, username="root-op", role="admin", projects=(), address="127.0.0.1")
SCRIPT = "def process(inputs, parameters):\n    return inputs['sst']\n"


@pytest.fixture
def session(engine: Engine) -> Any:
    """A session on a catalog of two datasets: sst-l4 (oceanheatflux, five days) and ice-charts (glaciers)."""
    with session_factory(engine)() as session:
        for project in ("oceanheatflux", "glaciers"):
            create_project(session, project, actor="setup")
        add_dataset(session, "sst-l4", "/archive/l4", "**/*.nc", projects=["oceanheatflux"], actor="setup")
        add_dataset(session, "ice-charts", "/archive/ice", "*.nc", projects=["glaciers"], actor="setup")
        for day in range(5):
            start = DAY0 + dt.timedelta(days=day)
            session.add(
                Granule(
                    dataset_id="sst-l4",
                    path=f"2020/l4-{day}.nc",
                    size=1000,
                    mtime_ns=day,
                    time_start=start,
                    time_end=start + dt.timedelta(days=1),
                    west=-180.0,
                    south=-90.0,
                    east=180.0,
                    north=90.0,
                )
            )
        session.commit()
        refresh_summary(session, get_dataset(session, "sst-l4"))
        yield session


def spec(**changes: Any) -> Any:
    return validate_spec(
        {
            "name": "sst-mean",
            "inputs": {"sst": {"dataset": "sst-l4", "time": "2020-01-01/2020-01-03"}},
            "processor": "nephelae.processors:time_mean",
            "output": {"dataset": "alice-sst-mean"},
        }
        | changes
    )


def workspace(settings: Settings, user: str = "alice") -> Path:
    path = settings.workspaces_dir / user
    path.mkdir(parents=True, exist_ok=True)
    return path


def submit(session: Session, settings: Settings, principal: Principal = ALICE, **changes: Any) -> Campaign:
    return submit_campaign(session, settings, principal, spec(**changes))


# Submission checks.


def test_a_valid_submission_is_queued_with_its_processor_identity_and_output_dataset(
    session: Session, settings: Settings
) -> None:
    campaign = submit(session, settings)
    assert (campaign.status, campaign.owner, campaign.task_count, campaign.request) == ("queued", "alice", 0, None)
    assert campaign.processor_identity == f"nephelae.processors:time_mean@nephelae {__version__}"
    assert campaign.spec == spec().document()
    output = get_dataset(session, "alice-sst-mean")
    assert output.owner == "alice" and output.pattern == "**/*.nc"
    assert Path(output.root) == (settings.campaigns_dir / "alice-sst-mean").resolve() and Path(output.root).is_dir()
    assert output.provenance["campaigns"] == [campaign.id]
    assert output.provenance["processor"] == campaign.processor_identity
    assert "alice-sst-mean" in {dataset.id for dataset in list_datasets(session, ALICE)}
    project_member = Principal(9, "carol", "user", ("oceanheatflux",), "127.0.0.1")
    assert "alice-sst-mean" in {dataset.id for dataset in list_datasets(session, project_member)}
    assert "alice-sst-mean" not in {dataset.id for dataset in list_datasets(session, BOB)}


def test_an_unknown_input_dataset_is_not_found(session: Session, settings: Settings) -> None:
    with pytest.raises(NotFound, match=r"input 'sst': no dataset 'sst-l9'.*nephelae datasets list"):
        submit(session, settings, inputs={"sst": {"dataset": "sst-l9"}})


def test_an_input_the_submitter_may_not_read_is_refused(session: Session, settings: Settings) -> None:
    with pytest.raises(PermissionDenied, match=r"input 'ice': account alice has no access to dataset ice-charts"):
        submit(session, settings, inputs={"sst": {"dataset": "sst-l4"}, "ice": {"dataset": "ice-charts"}})


def test_an_empty_selection_is_refused_unless_the_campaign_follows(session: Session, settings: Settings) -> None:
    later = {"sst": {"dataset": "sst-l4", "time": "2021-01-01/2021-12-31"}}
    with pytest.raises(InvalidInput, match=r"no readable granule of sst-l4 matches.*widen the time"):
        submit(session, settings, inputs=later)
    assert submit(session, settings, inputs=later, follow=True).follow


def test_an_unknown_builtin_is_refused_with_the_known_ones(session: Session, settings: Settings) -> None:
    with pytest.raises(InvalidInput, match=r"no processor 'time_median'; known: .*time_mean"):
        submit(session, settings, processor="nephelae.processors:time_median")
    with pytest.raises(InvalidInput, match=r"unknown built-in processor module 'nephelae.processors.nope'"):
        submit(session, settings, processor="nephelae.processors.nope:time_mean")


def test_a_workspace_script_is_identified_by_its_hash(session: Session, settings: Settings) -> None:
    script = workspace(settings) / "scripts" / "mean.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    campaign = submit(session, settings, processor="scripts/mean.py:process")
    assert campaign.processor_identity == f"scripts/mean.py:process@sha256:{file_sha256(script)}"
    script.write_text(SCRIPT + "# changed\n")
    second = submit(session, settings, processor="scripts/mean.py:process")
    assert second.processor_identity != campaign.processor_identity  # a changed script never reuses old outputs
    assert get_dataset(session, "alice-sst-mean").provenance["campaigns"] == [campaign.id, second.id]


def test_a_missing_script_says_how_to_upload_it(session: Session, settings: Settings) -> None:
    workspace(settings)
    with pytest.raises(InvalidInput, match=r"script scripts/mean.py is not in your workspace.*nephelae files put"):
        submit(session, settings, processor="scripts/mean.py:process")


def test_scripts_outside_the_workspace_are_refused(session: Session, settings: Settings, tmp_path: Path) -> None:
    home = workspace(settings)
    elsewhere = tmp_path / "elsewhere.py"
    elsewhere.write_text(SCRIPT)
    with pytest.raises(InvalidInput, match=r"no '\.\.'"):  # the spec refuses '..' before anything is looked up
        submit(session, settings, processor="../bob/steal.py:process")
    bobs = workspace(settings, "bob") / "steal.py"
    bobs.write_text(SCRIPT)
    crafted = ProcessorRef("script", "../bob/steal.py", "process")  # and the service checks again
    with pytest.raises(InvalidInput, match=r"leads outside your workspace"):
        processor_identity(settings, "alice", crafted)
    (home / "link.py").symlink_to(elsewhere)
    with pytest.raises(InvalidInput, match=r"script link.py leads outside your workspace"):
        submit(session, settings, processor="link.py:process")
    (home / "dir").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(InvalidInput, match=r"script dir/elsewhere.py leads outside your workspace"):
        submit(session, settings, processor="dir/elsewhere.py:process")
    (home / "real.py").write_text(SCRIPT)
    (home / "alias.py").symlink_to(home / "real.py")  # a link inside the workspace is fine
    assert submit(session, settings, processor="alias.py:process").processor_identity.startswith("alias.py:process@")
    (home / "folder.py").mkdir()
    with pytest.raises(InvalidInput, match=r"not a regular file"):
        submit(session, settings, processor="folder.py:process")


def test_a_command_program_must_be_an_executable_of_the_workspace(session: Session, settings: Settings) -> None:
    program = workspace(settings) / "bin" / "anomaly"
    command = {"command": ["./bin/anomaly", "{input.sst}", "{output}"]}
    with pytest.raises(InvalidInput, match=r"program bin/anomaly is not in your workspace"):
        submit(session, settings, processor=command)
    program.parent.mkdir()
    program.write_text('#!/bin/sh\ncp "$1" "$2"\n')
    with pytest.raises(InvalidInput, match=r"not executable; run `chmod \+x`"):
        submit(session, settings, processor=command)
    program.chmod(0o755)
    identity = submit(session, settings, processor=command).processor_identity
    assert identity == (
        'command:["./bin/anomaly", "{input.sst}", "{output}"]' + f"@sha256:{file_sha256(program.resolve())}"
    )
    on_path = submit(session, settings, processor={"command": ["ncks", "{input.sst}", "{output}"]})
    assert on_path.processor_identity == 'command:["ncks", "{input.sst}", "{output}"]'


def test_the_output_dataset_must_be_new_or_the_submitters(session: Session, settings: Settings) -> None:
    with pytest.raises(Conflict, match=r"dataset 'ice-charts' already exists and is not yours.*'alice-ice-charts'"):
        submit(session, settings, output={"dataset": "ice-charts"})
    add_dataset(session, "bob-charts", "/somewhere", "*.nc", owner="bob")
    with pytest.raises(Conflict, match=r"'bob-charts' already exists and is not yours"):
        submit(session, settings, output={"dataset": "bob-charts"})
    first = submit(session, settings)
    assert submit(session, settings).output_dataset == first.output_dataset  # a rerun adds to alice's own dataset


# Reading campaigns.


def test_campaigns_are_visible_to_their_owner_and_admins_only(session: Session, settings: Settings) -> None:
    mine = submit(session, settings)
    assert get_campaign(session, ALICE, mine.id).id == mine.id
    assert get_campaign(session, ADMIN, mine.id).id == mine.id
    with pytest.raises(NotFound, match=rf"no campaign {mine.id}; `nephelae campaigns list` shows yours"):
        get_campaign(session, BOB, mine.id)
    with pytest.raises(NotFound):
        get_campaign(session, ALICE, mine.id + 100)
    second = submit(session, settings)
    assert [campaign.id for campaign in list_campaigns(session, ALICE)] == [second.id, mine.id]
    assert list_campaigns(session, ALICE, limit=1)[0].id == second.id
    assert list_campaigns(session, BOB) == []
    with pytest.raises(PermissionDenied, match=r"only operators"):
        list_campaigns(session, BOB, everyone=True)
    assert len(list_campaigns(session, ADMIN, everyone=True)) == 2
    with pytest.raises(NotFound):
        list_tasks(session, BOB, mine.id)


def add_tasks(session: Session, campaign: Campaign, statuses: list[str], log_dir: Path) -> None:
    for ordinal, status in enumerate(statuses):
        task = CampaignTask(
            campaign_id=campaign.id,
            ordinal=ordinal,
            key=f"{ordinal:064x}",
            label=f"task {ordinal}",
            inputs={"sst": [f"/archive/l4/2020/l4-{ordinal}.nc"]},
            status=status,
            attempts=0,
            outputs=[],
            log_path=str(log_dir / f"{ordinal}.log"),
        )
        session.add(task)
    session.commit()


def test_tasks_come_in_pages_in_order_and_by_status(session: Session, settings: Settings, tmp_path: Path) -> None:
    campaign = submit(session, settings)
    add_tasks(session, campaign, ["done", "failed", "pending", "done", "running"] * 3, tmp_path)
    page = list_tasks(session, ALICE, campaign.id, limit=4)
    assert [task.ordinal for task in page] == [0, 1, 2, 3]
    assert [task.ordinal for task in list_tasks(session, ALICE, campaign.id, after=3, limit=4)] == [4, 5, 6, 7]
    assert [task.ordinal for task in list_tasks(session, ALICE, campaign.id, status="failed")] == [1, 6, 11]
    assert list_tasks(session, ALICE, campaign.id, after=14) == []
    with pytest.raises(InvalidInput, match=r"task status 'finished' is not one of pending, running, done"):
        list_tasks(session, ALICE, campaign.id, status="finished")


def test_a_task_log_is_read_from_its_end(session: Session, settings: Settings, tmp_path: Path) -> None:
    campaign = submit(session, settings)
    add_tasks(session, campaign, ["done", "pending"], tmp_path)
    (tmp_path / "0.log").write_text("".join(f"line {number}\n" for number in range(1000)))
    assert task_log(session, ALICE, campaign.id, 0).startswith("line 0\n")
    tail = task_log(session, ALICE, campaign.id, 0, tail_bytes=30)
    assert tail.endswith("line 999\n") and tail.startswith("line 99")  # whole lines only
    assert task_log(session, ALICE, campaign.id, 1) == ""  # not started: no log yet
    with pytest.raises(NotFound, match=r"has no task 7"):
        task_log(session, ALICE, campaign.id, 7)
    with pytest.raises(NotFound):
        task_log(session, BOB, campaign.id, 0)


# Requests for the engine.


def test_cancel_is_requested_until_the_campaign_is_final(session: Session, settings: Settings) -> None:
    campaign = submit(session, settings)
    assert request_cancel(session, ALICE, campaign.id).request == "cancel"
    with pytest.raises(NotFound):
        request_cancel(session, BOB, campaign.id)
    campaign.status = "completed"
    session.commit()
    with pytest.raises(Conflict, match=r"already completed; there is nothing to cancel"):
        request_cancel(session, ALICE, campaign.id)


def test_retry_needs_failed_tasks_and_a_campaign_not_cancelled(session: Session, settings: Settings) -> None:
    campaign = submit(session, settings)
    with pytest.raises(Conflict, match=r"no failed task to retry"):
        request_retry(session, ALICE, campaign.id)
    campaign.status, campaign.failed_count, campaign.done_count, campaign.task_count = (
        "completed_with_failures",
        2,
        3,
        5,
    )
    session.commit()
    assert request_retry(session, ADMIN, campaign.id).request == "retry"
    campaign.status = "cancelled"
    session.commit()
    with pytest.raises(Conflict, match=r"was cancelled; submit its spec again"):
        request_retry(session, ALICE, campaign.id)


def test_progress_counts_fractions_and_timings(session: Session, settings: Settings) -> None:
    campaign = submit(session, settings)
    assert progress(campaign)["fraction_done"] == 0.0 and progress(campaign)["started_at"] is None
    now = dt.datetime.now(dt.UTC)
    campaign.status, campaign.planning_finished, campaign.started_at = "running", True, now - dt.timedelta(seconds=10)
    campaign.task_count, campaign.done_count, campaign.failed_count, campaign.pending_count = 10, 4, 1, 5
    session.commit()
    summary = progress(campaign)
    assert summary["counts"] == {"pending": 5, "running": 0, "done": 4, "failed": 1, "cancelled": 0}
    assert summary["fraction_done"] == 0.5 and summary["tasks"] == 10
    assert 9 < summary["elapsed_seconds"] < 60 and 9 < summary["remaining_seconds"] < 60
    campaign.status, campaign.finished_at = "completed_with_failures", now
    summary = progress(campaign)
    assert summary["remaining_seconds"] is None and summary["finished_at"] == now.isoformat()


def test_workspace_permissions_are_not_needed_to_submit_builtins(session: Session, settings: Settings) -> None:
    assert not (settings.workspaces_dir / "alice").exists()
    assert submit(session, settings).status == "queued"
    assert os.access(settings.campaigns_dir / "alice-sst-mean", os.W_OK)


def test_a_zarr_output_dataset_catalogues_stores(session: Session, settings: Settings) -> None:
    submit(session, settings, output={"dataset": "alice-sst-mean", "format": "zarr"})
    dataset = session.get(Dataset, "alice-sst-mean")
    assert dataset is not None and dataset.pattern == "**/*.zarr"
