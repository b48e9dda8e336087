"""`nephelae campaigns ...`: user commands through a real server, run in-process on SQLite and PostgreSQL.

The server runs without its engine; the states an engine would reach are written into the campaign's rows, so that
each command's output and exit status is checked for each way a campaign can end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine

from nephelae.catalog.datasets import add_dataset
from nephelae.catalog.indexer import index_dataset
from nephelae.cli.campaigns import EXIT_COMPLETED_WITH_FAILURES, EXIT_FAILED, EXIT_TIMEOUT
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Campaign
from nephelae.demo.archive import build_demo_archive
from tests.api.support import People
from tests.api.test_campaigns import T0, add_tasks, set_campaign, spec, without_engine
from tests.api.test_datasets import Catalog, build_catalog
from tests.cli.test_admin import Admin
from tests.support.server import serve_in_thread


@pytest.fixture
def user(
    capsys: pytest.CaptureFixture[str], settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Admin, Catalog]]:
    """`nephelae ...` as alice (NEPHELAE_URL, NEPHELAE_TOKEN) against a served catalog, without the engine."""
    catalog = build_catalog(engine)
    with serve_in_thread(without_engine(settings)) as running:
        monkeypatch.setenv("NEPHELAE_URL", running.url)
        monkeypatch.setenv("NEPHELAE_TOKEN", catalog.alice)
        monkeypatch.setenv("COLUMNS", "250")
        yield Admin(capsys, settings.home), catalog


def spec_file(directory: Path, filename: str = "sst-mean.yaml", **changes: Any) -> str:
    path = directory / filename
    document = spec(**changes)
    path.write_text(json.dumps(document) if filename.endswith(".json") else yaml.safe_dump(document, sort_keys=False))
    return str(path)


def test_submit_list_and_status(user: tuple[Admin, Catalog], tmp_path: Path) -> None:
    nephelae, _ = user
    code, out, _ = nephelae("campaigns", "submit", spec_file(tmp_path))
    assert code == 0 and "Submitted campaign 1 (sst-mean): queued, writing alice-sst-mean." in out
    assert "nephelae campaigns wait 1" in out
    second = nephelae.json(
        "campaigns", "submit", spec_file(tmp_path, "second.json", name="second", output={"dataset": "alice-second"})
    )
    assert (second["id"], second["name"], second["status"]) == (2, "second", "queued")

    assert [campaign["id"] for campaign in nephelae.json("campaigns", "list")] == [2, 1]
    code, out, _ = nephelae("campaigns", "list")
    assert code == 0 and "sst-mean" in out and "alice-second" in out and "0/0" in out
    shown = nephelae.json("campaigns", "status", "1")
    assert shown["spec"]["processor"] == "nephelae.processors:time_mean" and shown["counts"]["total"] == 0
    code, out, _ = nephelae("campaigns", "status", "1")
    assert code == 0 and "queued" in out and "alice-sst-mean" in out and "nephelae.processors:time_mean" in out


def test_bad_specs_are_clear_errors(user: tuple[Admin, Catalog], tmp_path: Path) -> None:
    nephelae, _ = user
    missing = str(tmp_path / "nowhere.yaml")
    nephelae.fails(f"invalid_input: spec file {missing} does not exist", "campaigns", "submit", missing)
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    nephelae.fails("invalid_input: broken.yaml is not valid YAML", "campaigns", "submit", str(tmp_path / "broken.yaml"))
    wrong = spec_file(tmp_path, "wrong.yaml", colour="blue", processor="os:system")
    error = nephelae.fails("invalid_input: wrong.yaml is not a valid campaign spec", "campaigns", "submit", wrong)
    assert "colour: unknown field" in error and "processor: " in error
    unknown = spec_file(tmp_path, "unknown.yaml", inputs={"sst": {"dataset": "nowhere"}})
    nephelae.fails("not_found: ", "campaigns", "submit", unknown)
    foreign = spec_file(tmp_path, "foreign.yaml", inputs={"ice": {"dataset": "ice-charts"}})
    nephelae.fails("forbidden: ", "campaigns", "submit", foreign)
    nephelae.fails("not_found: ", "campaigns", "status", "42")
    assert nephelae.json("campaigns", "list") == []


def test_logs_show_failed_tasks_and_one_task_log(user: tuple[Admin, Catalog], tmp_path: Path, engine: Engine) -> None:
    nephelae, _ = user
    campaign_id = nephelae.json("campaigns", "submit", spec_file(tmp_path))["id"]
    add_tasks(engine, campaign_id, ["done", "failed", "done", "failed", "failed"], tmp_path / "logs")
    set_campaign(engine, campaign_id, status="completed_with_failures", started_at=T0, finished_at=T0)
    code, out, err = nephelae("campaigns", "logs", str(campaign_id))
    assert code == 0 and "completed_with_failures" in out and "2020/002/l4-1.nc" in out
    assert out.count("ValueError: no valid pixel") == 3 and "--task T" in err
    code, out, err = nephelae("campaigns", "logs", str(campaign_id), "--limit", "2")
    assert code == 0 and out.count("ValueError") == 2 and "Showing 2 of 3 failed tasks" in err
    report = nephelae.json("campaigns", "logs", str(campaign_id))
    assert report["campaign"]["id"] == campaign_id and [task["id"] for task in report["failed_tasks"]] == [1, 3, 4]
    code, out, _ = nephelae("campaigns", "logs", str(campaign_id), "--task", "1")
    assert code == 0 and out.startswith("task 1 says hello") and out.endswith("the end\n")
    assert nephelae.json("campaigns", "logs", str(campaign_id), "--task", "0")["log"].startswith("task 0")


def test_cancel_and_retry(user: tuple[Admin, Catalog], tmp_path: Path, engine: Engine) -> None:
    nephelae, _ = user
    campaign_id = str(nephelae.json("campaigns", "submit", spec_file(tmp_path))["id"])
    code, out, _ = nephelae("campaigns", "cancel", campaign_id)
    assert code == 0 and f"Asked campaign {campaign_id} to stop" in out
    add_tasks(engine, int(campaign_id), ["done", "failed"], tmp_path / "logs")
    set_campaign(engine, int(campaign_id), status="completed_with_failures", request=None)
    nephelae.fails("conflict: ", "campaigns", "cancel", campaign_id)
    assert nephelae.json("campaigns", "retry", campaign_id)["request"] == "retry"
    set_campaign(engine, int(campaign_id), status="cancelled", request=None)
    nephelae.fails("conflict: ", "campaigns", "retry", campaign_id)


@pytest.mark.parametrize(
    ("status", "exit_code", "line"),
    [
        ("completed", 0, None),
        ("completed_with_failures", EXIT_COMPLETED_WITH_FAILURES, "completed_with_failures: campaign 1 ended with 1"),
        ("failed", EXIT_FAILED, "failed: campaign 1 failed: the scheduler vanished"),
        ("cancelled", EXIT_FAILED, "cancelled: campaign 1 was cancelled"),
    ],
)
def test_wait_exits_with_how_the_campaign_ended(
    user: tuple[Admin, Catalog],
    tmp_path: Path,
    engine: Engine,
    status: str,
    exit_code: int,
    line: str | None,
) -> None:
    nephelae, _ = user
    campaign_id = nephelae.json("campaigns", "submit", spec_file(tmp_path))["id"]
    add_tasks(engine, campaign_id, ["done", "failed" if status != "completed" else "done"], tmp_path / "logs")
    set_campaign(engine, campaign_id, status=status, error="the scheduler vanished" if status == "failed" else None)
    code, out, err = nephelae("campaigns", "wait", str(campaign_id), "--poll", "0.1")
    assert code == exit_code, err
    if line is None:
        assert "Campaign 1 completed: 2 tasks done; output dataset alice-sst-mean." in out
    else:
        assert line in err and "Traceback" not in err
    code, out, _ = nephelae("campaigns", "wait", str(campaign_id), "--json")
    assert code == exit_code and json.loads(out)["status"] == status


def test_wait_follows_a_running_campaign_and_can_time_out(
    user: tuple[Admin, Catalog], tmp_path: Path, engine: Engine
) -> None:
    nephelae, _ = user
    campaign_id = nephelae.json("campaigns", "submit", spec_file(tmp_path))["id"]
    add_tasks(engine, campaign_id, ["done", "running", "pending"], tmp_path / "logs")
    set_campaign(engine, campaign_id, status="running", started_at=T0)
    code, _, err = nephelae("campaigns", "wait", str(campaign_id), "--poll", "0.1", "--timeout", "0.3")
    assert code == EXIT_TIMEOUT and f"timeout: campaign {campaign_id} is still running after 0.3 s" in err

    def finish_later() -> None:
        time.sleep(0.5)
        set_campaign(engine, campaign_id, status="completed", done_count=3, running_count=0, pending_count=0)

    finisher = threading.Thread(target=finish_later)
    finisher.start()
    started = time.monotonic()
    code, out, err = nephelae("campaigns", "wait", str(campaign_id), "--poll", "0.1")
    finisher.join()
    assert code == 0 and time.monotonic() - started >= 0.5, err
    assert "campaign 1" in err and "3/3" in err  # the progress bar, on standard error
    assert "Campaign 1 completed" in out


def test_submit_wait_through_the_engine_completes_and_catalogues_the_output(
    capsys: pytest.CaptureFixture[str], settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a real campaign over a tiny demo archive, with the built-in time_mean, run by the real engine."""
    (l4,) = [item for item in build_demo_archive(settings.home / "archive", days=2) if item.id == "demo-l4-sst"]
    token = People(session_factory(engine)).account("alice")
    with session_factory(engine)() as session:
        add_dataset(session, "l4", str(l4.root), l4.pattern, public=True)
    index_dataset(engine, "l4")
    document = {
        "name": "l4-mean",
        "inputs": {"sst": {"dataset": "l4"}},
        "group_by": "day",
        "processor": "nephelae.processors:time_mean",
        "output": {"dataset": "alice-l4-mean"},
    }
    (settings.home / "l4-mean.yaml").write_text(yaml.safe_dump(document))
    with serve_in_thread(settings) as running:
        monkeypatch.setenv("NEPHELAE_URL", running.url)
        monkeypatch.setenv("NEPHELAE_TOKEN", token)
        nephelae = Admin(capsys, settings.home)
        code, out, err = nephelae("campaigns", "submit", str(settings.home / "l4-mean.yaml"), "--wait", "--poll", "0.2")
        assert code == 0, (out, err)
        assert "Campaign 1 completed: 2 tasks done; output dataset alice-l4-mean." in out
        assert "alice-l4-mean" in [dataset["id"] for dataset in nephelae.json("datasets", "list")]
        output = nephelae.json("datasets", "show", "alice-l4-mean")
        assert output["owner"] == "alice" and output["granule_count"] == 2 and output["provenance"]["campaigns"] == [1]
    with session_factory(engine)() as session:
        campaign = session.get(Campaign, 1)
        assert campaign is not None and campaign.done_count == 2
