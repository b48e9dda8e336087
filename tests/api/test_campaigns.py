"""`/api/v1/campaigns`: submission (JSON and YAML, every refusal a clear problem), ownership, task paging and logs,
cancel and retry, through the real server on SQLite and PostgreSQL.

The server here runs no engine: campaigns stay as the tests leave them, and the states an engine would reach are
written straight into the rows, so that each wire shape is checked exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from nephelae.catalog.datasets import get_dataset
from nephelae.client import Client
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Campaign, CampaignTask
from nephelae.errors import Conflict, InvalidInput, ServiceUnavailable
from tests.api.support import assert_problem, bearer
from tests.api.test_datasets import Catalog, build_catalog
from tests.support.server import RunningServer, serve_in_thread

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def spec(**changes: Any) -> dict[str, Any]:
    """A valid spec of alice's over five days of sst-l4, with `changes` applied."""
    return {
        "name": "sst-mean",
        "inputs": {"sst": {"dataset": "sst-l4", "time": "2020-01-01/2020-01-05", "bbox": [-80, 0, 0, 60]}},
        "group_by": "granule",
        "processor": "nephelae.processors:time_mean",
        "output": {"dataset": "alice-sst-mean"},
    } | changes


def without_engine(settings: Settings) -> Settings:
    """The settings with the campaign engine off: campaigns stay as the tests leave them."""
    return settings.model_copy(update={"run_engine": False})


@pytest.fixture
def quiet_server(settings: Settings) -> Iterator[RunningServer]:
    """The platform served on loopback without its engine: campaigns change only when a test changes them."""
    with serve_in_thread(without_engine(settings)) as running:
        yield running


@pytest.fixture
def catalog(quiet_server: RunningServer, engine: Engine) -> Catalog:
    return build_catalog(engine)


class Api:
    """Requests to one server's /api/v1 with one person's token."""

    def __init__(self, server: RunningServer, token: str) -> None:
        self.base = f"{server.url}/api/v1"
        self.headers = bearer(token)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", params=params, headers=self.headers, timeout=10)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = self.headers | kwargs.pop("headers", {})
        return httpx.post(f"{self.base}{path}", headers=headers, timeout=10, **kwargs)

    def submit(self, document: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post("/campaigns", json=spec() if document is None else document)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


def set_campaign(engine: Engine, campaign_id: int, **fields: Any) -> None:
    """Write a campaign's row as the engine would."""
    with session_factory(engine)() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        for name, value in fields.items():
            setattr(campaign, name, value)
        session.commit()


def granule(ordinal: int) -> str:
    """The path of the test catalog's L4 granule of day `ordinal`, relative to the dataset's root."""
    return f"2020/{ordinal + 1:03d}/l4-{ordinal}.nc"


def task_row(campaign_id: int, ordinal: int, status: str, log_dir: Path, output_root: str) -> CampaignTask:
    """A task as the engine leaves it, with absolute paths: finished ones have a log, failed ones an error."""
    ran, failed = status in ("done", "failed"), status == "failed"
    log = log_dir / f"{ordinal}.log"
    if ran:
        log.write_text(f"task {ordinal} says hello\n" + "x" * 100 + "\nthe end\n")
    key = f"{ordinal:064x}"
    return CampaignTask(
        campaign_id=campaign_id,
        ordinal=ordinal,
        key=key,
        label=f"/archive/l4/{granule(ordinal)}",
        inputs={"sst": [f"/archive/l4/{granule(ordinal)}"]},
        status=status,
        attempts=3 if failed else int(ran),
        worker="tcp://127.0.0.1:40000" if ran else None,
        started_at=T0 if ran else None,
        finished_at=T0 + dt.timedelta(seconds=2.5) if ran else None,
        error="ValueError: no valid pixel" if failed else None,
        traceback="Traceback (most recent call last):\n  ...\nValueError: no valid pixel" if failed else None,
        log_path=str(log) if ran else None,
        outputs=[{"path": f"{output_root}/{key[:2]}/{key}.nc", "size": 1234, "reused": False}]
        if status == "done"
        else [],
    )


def add_tasks(engine: Engine, campaign_id: int, statuses: list[str], log_dir: Path) -> None:
    """Task rows in `statuses` order, and the campaign's counts, as the engine writes them."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with session_factory(engine)() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        output_root = get_dataset(session, campaign.output_dataset).root
        for ordinal, status in enumerate(statuses):
            session.add(task_row(campaign_id, ordinal, status, log_dir, output_root))
        for name in ("pending", "running", "done", "failed", "cancelled"):
            setattr(campaign, f"{name}_count", statuses.count(name))
        campaign.task_count, campaign.planning_finished = len(statuses), True
        session.commit()


# Submission


def test_submit_answers_201_with_the_campaign_and_its_location(quiet_server: RunningServer, catalog: Catalog) -> None:
    alice = Api(quiet_server, catalog.alice)
    response = alice.post("/campaigns", json=spec())
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{quiet_server.url}/api/v1/campaigns/{created['id']}"
    assert (created["name"], created["owner"], created["status"]) == ("sst-mean", "alice", "queued")
    assert created["output_dataset"] == "alice-sst-mean"
    assert created["counts"] == {"pending": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0, "total": 0}
    assert created["progress"] == 0.0 and created["error"] is None and created["started_at"] is None
    assert created["spec"]["inputs"]["sst"]["time"] == "2020-01-01T00:00:00+00:00/2020-01-05T00:00:00+00:00"
    assert created["spec"]["retries"] == 2  # defaults filled in: the spec as the platform runs it
    shown = httpx.get(response.headers["location"], headers=alice.headers, timeout=10).json()
    assert shown["id"] == created["id"] and shown["created_at"] == created["created_at"]


def test_a_yaml_spec_is_accepted_and_other_media_types_refused(quiet_server: RunningServer, catalog: Catalog) -> None:
    alice = Api(quiet_server, catalog.alice)
    document = yaml.safe_dump(spec(name="from-yaml", output={"dataset": "alice-yaml"}))
    response = alice.post("/campaigns", content=document, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "from-yaml"
    broken = alice.post("/campaigns", content="name: [unclosed\n", headers={"Content-Type": "text/yaml"})
    assert "request body is not valid YAML" in assert_problem(broken, 400, "invalid_input")
    csv = alice.post("/campaigns", content="a,b\n", headers={"Content-Type": "text/csv"})
    assert "application/json or application/yaml" in assert_problem(csv, 415, "unsupported_media_type")
    not_json = alice.post("/campaigns", content="{", headers={"Content-Type": "application/json"})
    assert "request body is not valid JSON" in assert_problem(not_json, 400, "invalid_input")
    twice = alice.post("/campaigns", content='{"name": "a", "name": "b"}', headers={"Content-Type": "application/json"})
    assert "key 'name' appears twice" in assert_problem(twice, 400, "invalid_input")
    anonymous = httpx.post(f"{alice.base}/campaigns", content="{", timeout=10)
    assert_problem(anonymous, 401, "unauthenticated")  # who is asking comes before what they ask
    listed = alice.post("/campaigns", json=[spec()])
    assert "request body must be a mapping" in assert_problem(listed, 400, "invalid_input")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"colour": "blue"}, ["colour: unknown field; expected one of name, inputs"]),
        ({"inputs": {"sst": {"dataset": "sst-l4", "time": "2020-13-01/2020-12-31"}}}, ["inputs.sst.time: "]),
        ({"inputs": {"sst": {"dataset": "sst-l4", "bbox": [0, 60, 10, 50]}}}, ["inputs.sst.bbox: ", "latitude"]),
        ({"processor": "os:system"}, ["processor: ", "'os' is not a built-in processor module"]),
        ({"processor": "../x.py:f"}, ["processor: ", "must be relative to your workspace"]),
        ({"retries": 99, "output": {"dataset": "Bad Id"}}, ["retries: ", "output.dataset: "]),  # every field named
    ],
)
def test_an_invalid_spec_is_one_400_naming_every_faulty_field(
    quiet_server: RunningServer, catalog: Catalog, changes: dict[str, Any], expected: list[str]
) -> None:
    detail = assert_problem(Api(quiet_server, catalog.alice).post("/campaigns", json=spec(**changes)), 400)
    assert detail.startswith("request body is not a valid campaign spec: ")
    for part in expected:
        assert part in detail


def test_datasets_must_exist_and_be_readable(quiet_server: RunningServer, catalog: Catalog, engine: Engine) -> None:
    alice = Api(quiet_server, catalog.alice)
    unknown = alice.post("/campaigns", json=spec(inputs={"sst": {"dataset": "nowhere"}}))
    assert "nowhere" in assert_problem(unknown, 404, "not_found")
    foreign = alice.post("/campaigns", json=spec(inputs={"ice": {"dataset": "ice-charts"}}))
    assert "ice-charts" in assert_problem(foreign, 403, "forbidden")
    taken = alice.post("/campaigns", json=spec(output={"dataset": "bathymetry"}))
    assert "bathymetry" in assert_problem(taken, 409, "conflict")
    with session_factory(engine)() as session:
        assert session.query(Campaign).count() == 0  # nothing half-submitted


def test_the_request_body_is_documented(quiet_server: RunningServer) -> None:
    openapi = httpx.get(f"{quiet_server.url}/api/v1/openapi.json", timeout=10).json()
    body = openapi["paths"]["/api/v1/campaigns"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/yaml"}
    schema = body["application/json"]["schema"]
    assert {"name", "inputs", "processor", "output"} <= set(schema["required"]) and "$defs" not in schema
    assert "$ref" not in str(schema)  # the spec's parts written out: they resolve nowhere else in this document
    tasks = openapi["paths"]["/api/v1/campaigns/{campaign_id}/tasks"]["get"]
    assert {parameter["name"] for parameter in tasks["parameters"]} == {"campaign_id", "status", "limit", "after"}


# Reading


def test_campaigns_are_their_owners_and_the_admins(quiet_server: RunningServer, catalog: Catalog) -> None:
    alice, bob, admin = (Api(quiet_server, token) for token in (catalog.alice, catalog.bob, catalog.admin))
    first = alice.submit()
    second = alice.submit(spec(name="second", output={"dataset": "alice-second"}))
    assert [campaign["id"] for campaign in alice.get("/campaigns").json()] == [second["id"], first["id"]]
    assert bob.get("/campaigns").json() == []
    for path in ("", "/tasks", "/tasks/0/log"):
        assert_problem(bob.get(f"/campaigns/{first['id']}{path}"), 404, "not_found")
    for action in ("cancel", "retry"):
        assert_problem(bob.post(f"/campaigns/{first['id']}/{action}"), 404, "not_found")
    assert admin.get(f"/campaigns/{first['id']}").json()["owner"] == "alice"
    assert admin.get("/campaigns").json() == []  # an admin's own, unless asked for all
    assert len(admin.get("/campaigns", all="true").json()) == 2
    assert_problem(bob.get("/campaigns", all="true"), 403, "forbidden")
    assert_problem(alice.get("/campaigns/999999"), 404, "not_found")
    assert_problem(alice.get("/campaigns/0"), 422, "invalid_request")
    assert_problem(httpx.get(f"{quiet_server.url}/api/v1/campaigns", timeout=10), 401, "unauthenticated")


def test_a_campaign_shows_its_counts_progress_and_timings(
    quiet_server: RunningServer, catalog: Catalog, engine: Engine, tmp_path: Path
) -> None:
    alice = Api(quiet_server, catalog.alice)
    campaign = alice.submit()
    add_tasks(engine, campaign["id"], ["done", "done", "failed", "running", "pending"], tmp_path / "logs")
    set_campaign(engine, campaign["id"], status="running", started_at=T0)
    shown = alice.get(f"/campaigns/{campaign['id']}").json()
    assert shown["status"] == "running" and shown["started_at"] == "2024-05-01T12:00:00Z"
    assert shown["counts"] == {"pending": 1, "running": 1, "done": 2, "failed": 1, "cancelled": 0, "total": 5}
    assert 0.0 < shown["progress"] < 1.0 and shown["planning_finished"] is True
    set_campaign(engine, campaign["id"], status="failed", error="the scheduler vanished", finished_at=T0)
    shown = alice.get(f"/campaigns/{campaign['id']}").json()
    assert (shown["status"], shown["error"], shown["finished_at"]) == (
        "failed",
        "the scheduler vanished",
        "2024-05-01T12:00:00Z",
    )


def test_tasks_are_paged_in_order_with_their_details(
    quiet_server: RunningServer, catalog: Catalog, engine: Engine, tmp_path: Path
) -> None:
    alice = Api(quiet_server, catalog.alice)
    campaign_id = alice.submit()["id"]
    add_tasks(engine, campaign_id, ["done", "failed", "pending", "done", "failed"], tmp_path / "logs")
    first = alice.get(f"/campaigns/{campaign_id}/tasks", limit=2).json()
    assert [task["id"] for task in first["tasks"]] == [0, 1] and first["next"] == 1
    (link,) = first["links"]
    assert link["rel"] == "next" and "after=1" in link["href"] and link["href"].startswith(quiet_server.url)
    second = httpx.get(link["href"], headers=alice.headers, timeout=10).json()
    assert [task["id"] for task in second["tasks"]] == [2, 3] and second["next"] == 3
    last = alice.get(f"/campaigns/{campaign_id}/tasks", limit=2, after=3).json()
    assert [task["id"] for task in last["tasks"]] == [4] and last["next"] is None and last["links"] == []

    done, failed = first["tasks"]
    assert done["status"] == "done" and done["attempts"] == 1 and done["duration"] == 2.5
    assert done["inputs"] == {"sst": [granule(0)]} and done["label"] == granule(0)  # no server path shown
    assert done["outputs"] == [{"path": f"00/{0:064x}.nc", "size": 1234, "reused": False}]
    assert done["worker"] == "tcp://127.0.0.1:40000" and done["started_at"] == "2024-05-01T12:00:00Z"
    assert done["error"] is None and done["log"] == f"{alice.base}/campaigns/{campaign_id}/tasks/0/log"
    assert failed["status"] == "failed" and failed["attempts"] == 3 and failed["error"] == "ValueError: no valid pixel"
    assert failed["traceback"].startswith("Traceback")
    pending = second["tasks"][0]
    assert pending["log"] is None and pending["duration"] is None and pending["worker"] is None

    only_failed = alice.get(f"/campaigns/{campaign_id}/tasks", status="failed").json()
    assert [task["id"] for task in only_failed["tasks"]] == [1, 4] and only_failed["next"] is None
    assert_problem(alice.get(f"/campaigns/{campaign_id}/tasks", status="lost"), 422, "invalid_request")
    assert_problem(alice.get(f"/campaigns/{campaign_id}/tasks", limit=0), 422, "invalid_request")


def test_a_task_log_is_plain_text(
    quiet_server: RunningServer, catalog: Catalog, engine: Engine, tmp_path: Path
) -> None:
    alice = Api(quiet_server, catalog.alice)
    campaign_id = alice.submit()["id"]
    add_tasks(engine, campaign_id, ["done", "pending"], tmp_path / "logs")
    log = alice.get(f"/campaigns/{campaign_id}/tasks/0/log")
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert log.text.startswith("task 0 says hello") and log.text.endswith("the end\n")
    tail = alice.get(f"/campaigns/{campaign_id}/tasks/0/log", tail=12).text
    assert tail == "the end\n"  # the last 12 bytes, from the first whole line
    assert_problem(alice.get(f"/campaigns/{campaign_id}/tasks/99/log"), 404, "not_found")


# Cancel and retry


def test_cancel_and_retry_are_accepted_when_they_make_sense(
    quiet_server: RunningServer, catalog: Catalog, engine: Engine, tmp_path: Path
) -> None:
    alice = Api(quiet_server, catalog.alice)
    campaign_id = alice.submit()["id"]
    assert_problem(alice.post(f"/campaigns/{campaign_id}/retry"), 409, "conflict")  # nothing failed
    cancelled = alice.post(f"/campaigns/{campaign_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["id"] == campaign_id and cancelled.json()["request"] == "cancel"

    add_tasks(engine, campaign_id, ["done", "failed"], tmp_path / "logs")
    set_campaign(engine, campaign_id, status="completed_with_failures", request=None, finished_at=T0)
    assert_problem(alice.post(f"/campaigns/{campaign_id}/cancel"), 409, "conflict")  # it is over
    retried = alice.post(f"/campaigns/{campaign_id}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["request"] == "retry"

    set_campaign(engine, campaign_id, status="cancelled", request=None)
    assert_problem(alice.post(f"/campaigns/{campaign_id}/retry"), 409, "conflict")  # submit it again instead


# The Python client, over the same wire


def test_the_client_submits_and_pages_lazily(
    quiet_server: RunningServer, catalog: Catalog, engine: Engine, tmp_path: Path
) -> None:
    with Client.open(quiet_server.url, catalog.alice) as client:
        submitted = client.submit_campaign(yaml.safe_dump(spec()))
        assert (submitted.status, submitted.finished, submitted.counts["total"]) == ("queued", False, 0)
        add_tasks(engine, submitted.id, ["done", "failed", "pending", "failed", "done"], tmp_path / "logs")
        tasks = client.tasks(submitted.id, page_size=2)
        assert [task.id for task in tasks] == [0, 1, 2, 3, 4]
        assert [task.id for task in client.tasks(submitted.id, "failed", page_size=1)] == [1, 3]
        assert [task.id for task in client.tasks(submitted.id, max_items=3, page_size=2)] == [0, 1, 2]
        first = next(client.tasks(submitted.id))
        assert (first.status, first.duration, first.log) == (
            "done",
            2.5,
            f"{client.url}/api/v1/campaigns/1/tasks/0/log",
        )
        assert client.task_log(submitted.id, 0, tail_bytes=12) == "the end\n"
        set_campaign(engine, submitted.id, status="completed_with_failures", finished_at=T0)
        ended = client.wait_campaign(submitted.id, poll=0.01, timeout=5)
        assert ended.finished and ended.finished_at == T0 and ended.counts["failed"] == 2
        with pytest.raises(Conflict):
            client.cancel_campaign(submitted.id)
        assert client.retry_campaign(submitted.id).wire["request"] == "retry"
        with pytest.raises(InvalidInput, match=r"inputs\.sst\.dataset"):
            client.submit_campaign(spec(inputs={"sst": {"dataset": "Not An Id"}}))
    with Client.open(quiet_server.url, catalog.admin) as client:
        assert client.campaigns() == [] and [c.owner for c in client.campaigns(everyone=True)] == ["alice"]


def test_the_client_never_sends_a_submission_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nephelae.client.transport.time.sleep", lambda _seconds: None)
    sent: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        raise httpx.ConnectError("connection refused", request=request)

    refused = Client("http://nephelae.test", "t", retries=2, transport=httpx.MockTransport(refuse))
    with refused, pytest.raises(ServiceUnavailable, match="cannot reach"):
        refused.submit_campaign(spec())
    assert len(sent) == 3  # never reached the server: safe to try again

    def time_out(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        raise httpx.ReadTimeout("no answer", request=request)

    sent.clear()
    with Client("http://nephelae.test", "t", retries=2, transport=httpx.MockTransport(time_out)) as client:
        with pytest.raises(ServiceUnavailable, match="may have been carried out"):
            client.submit_campaign(spec())
        with pytest.raises(ServiceUnavailable):
            client.wait_campaign(1, poll=0)
    assert sent == ["/api/v1/campaigns", *["/api/v1/campaigns/1"] * 3]  # reads are retried, the submission not
