"""`/api/v1/files` and `/api/v1/runs` on a real server (SQLite and PostgreSQL): each caller's own workspace only.

The server's limits are small here: 1 MB per upload, a 3 MB quota, 3 s per run.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from nephelae.accounts.audit import list_events
from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, session_factory, upgrade
from nephelae.workspaces.files import UPLOAD_PREFIX
from tests.api.support import SECOND_ADDRESS, People, assert_problem, bearer, client_from
from tests.sandbox.conftest import bubblewrap
from tests.support.server import RunningServer

__all__ = ["bubblewrap"]

MB = 1 << 20


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The shared `settings`, with small workspace and run limits."""
    settings = load_settings(
        tmp_path / "home",
        database_url=database_url,
        workspace_max_upload_mb=1,
        workspace_quota_mb=3,
        task_timeout_seconds=3,
        task_memory_mb=1024,
    )
    prepare_home(settings)
    engine = make_engine(settings.database)
    upgrade(engine)
    engine.dispose()
    return settings


@pytest.fixture
def people(engine: Engine) -> People:
    return People(session_factory(engine))


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as client:
        yield client


def test_round_trip_of_a_binary_file(http: httpx.Client, people: People, engine: Engine) -> None:
    alice = bearer(people.account("alice"))
    data = os.urandom(MB - 10)  # spans several socket reads and write batches
    answer = http.put("/files/results/2020/sst.bin", content=data, headers=alice)
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "results/2020/sst.bin" and answer.json()["size"] == len(data)
    download = http.get("/files/results/2020/sst.bin", headers=alice)
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''sst.bin"

    assert [item["path"] for item in http.get("/files", headers=alice).json()] == ["results"]
    listing = http.get("/files", params={"recursive": "true"}, headers=alice).json()
    assert [(item["path"], item["is_dir"]) for item in listing] == [
        ("results", True),
        ("results/2020", True),
        ("results/2020/sst.bin", False),
    ]
    assert http.get("/files", params={"path": "results/2020"}, headers=alice).json()[0]["size"] == len(data)
    assert http.put("/files/results/2020/sst.bin", content=b"v2", headers=alice).json()["size"] == 2
    assert http.get("/files/results/2020/sst.bin", headers=alice).content == b"v2"
    with session_factory(engine)() as session:
        uploads = list_events(session, actor="alice", kind="workspace.upload")
    assert [(event.detail["path"], event.detail["size"]) for event in uploads] == [
        ("results/2020/sst.bin", 2),
        ("results/2020/sst.bin", len(data)),
    ]


def test_who_may_call(http: httpx.Client, server: RunningServer, people: People) -> None:
    alice = bearer(people.account("alice"))
    assert http.put("/files/notes.txt", content=b"x", headers=alice).status_code == 200
    assert_problem(http.get("/files"), 401, "unauthenticated")
    assert_problem(http.put("/files/notes.txt", content=b"y"), 401, "unauthenticated")
    assert_problem(http.get("/files/notes.txt", headers=bearer("nonsense")), 401, "unauthenticated")
    assert_problem(http.post("/runs", json={"script": "notes.txt"}), 401, "unauthenticated")
    with client_from(SECOND_ADDRESS, f"{server.url}/api/v1") as elsewhere:
        detail = assert_problem(elsewhere.get("/files/notes.txt", headers=alice), 403, "forbidden")
        assert f"IP {SECOND_ADDRESS} is not in the allowed ranges of account alice" in detail
        assert_problem(elsewhere.put("/files/notes.txt", content=b"z", headers=alice), 403, "forbidden")
        assert_problem(elsewhere.delete("/files/notes.txt", headers=alice), 403, "forbidden")
    suspended = bearer(people.account("carol", status="suspended"))
    assert_problem(http.get("/files", headers=suspended), 403, "forbidden")
    assert http.get("/files/notes.txt", headers=alice).content == b"x"


def test_one_user_cannot_reach_another_users_files(http: httpx.Client, people: People, server: RunningServer) -> None:
    alice, bob = bearer(people.account("alice")), bearer(people.account("bob"))
    http.put("/files/private/draft.txt", content=b"alice's draft", headers=alice)
    assert http.get("/files", headers=bob).json() == []
    assert_problem(http.get("/files/private/draft.txt", headers=bob), 404, "not_found")
    for hostile in ("..%2Falice%2Fprivate%2Fdraft.txt", "%2E%2E/alice/private/draft.txt", "%2Fetc%2Fpasswd"):
        assert_problem(http.get(f"/files/{hostile}", headers=bob), 400, "invalid_input")
        assert_problem(http.put(f"/files/{hostile}", content=b"overwritten", headers=bob), 400, "invalid_input")
    assert_problem(http.get("/files", params={"path": "../alice"}, headers=bob), 400, "invalid_input")
    assert_problem(http.get("/files/a%00b", headers=bob), 400, "invalid_input")
    assert_problem(http.get("/files/a%5Cb", headers=bob), 400, "invalid_input")  # a backslash

    workspaces = server.settings.workspaces_dir
    (workspaces / "bob" / "alice.txt").symlink_to(workspaces / "alice" / "private" / "draft.txt")
    (workspaces / "bob" / "shadow").symlink_to("/etc/shadow")
    for link in ("alice.txt", "shadow"):
        assert "outside your workspace" in assert_problem(http.get(f"/files/{link}", headers=bob), 403, "forbidden")
        assert_problem(http.put(f"/files/{link}", content=b"overwritten", headers=bob), 403, "forbidden")
    assert http.delete("/files/alice.txt", headers=bob).status_code == 204  # the link goes, not alice's file
    assert http.get("/files/private/draft.txt", headers=alice).content == b"alice's draft"


def test_missing_files_directories_and_deletion(http: httpx.Client, people: People) -> None:
    alice = bearer(people.account("alice"))
    assert_problem(http.get("/files/nothing.nc", headers=alice), 404, "not_found")
    assert_problem(http.get("/files", params={"path": "nowhere"}, headers=alice), 404, "not_found")
    assert_problem(http.delete("/files/nothing.nc", headers=alice), 404, "not_found")
    http.put("/files/results/a.nc", content=b"1", headers=alice)
    assert "is a directory" in assert_problem(http.get("/files/results", headers=alice), 400, "invalid_input")
    assert_problem(http.put("/files/results", content=b"2", headers=alice), 409, "conflict")
    assert "--recursive" in assert_problem(http.delete("/files/results", headers=alice), 409, "conflict")
    assert http.delete("/files/results", params={"recursive": "true"}, headers=alice).status_code == 204
    assert http.get("/files", headers=alice).json() == []


def test_size_limit_and_quota(http: httpx.Client, people: People, server: RunningServer) -> None:
    alice = bearer(people.account("alice"))
    detail = assert_problem(
        http.put("/files/big.bin", content=b"x" * (MB + 1), headers=alice), 413, "payload_too_large"
    )
    assert "1.0 MB" in detail

    def unsized() -> Iterator[bytes]:  # chunked: no Content-Length, the limit is found while reading
        for _ in range(3):
            yield b"x" * (MB // 2)

    assert_problem(http.put("/files/big.bin", content=unsized(), headers=alice), 413, "payload_too_large")
    for name in ("a", "b", "c"):
        assert http.put(f"/files/{name}.bin", content=b"x" * (MB - 1000), headers=alice).status_code == 200
    detail = assert_problem(http.put("/files/d.bin", content=b"x" * 5000, headers=alice), 413, "quota_exceeded")
    assert "nephelae files rm" in detail
    assert http.put("/files/a.bin", content=b"x" * (MB - 1000), headers=alice).status_code == 200  # a replacement
    assert [item["path"] for item in http.get("/files", headers=alice).json()] == ["a.bin", "b.bin", "c.bin"]
    assert not list((server.settings.workspaces_dir / "alice").glob(f"{UPLOAD_PREFIX}*"))


def test_an_interrupted_upload_leaves_no_partial_file(
    http: httpx.Client, people: People, server: RunningServer
) -> None:
    alice = people.account("alice")
    http.put("/files/data.bin", content=b"complete old version", headers=bearer(alice))
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        head = (
            f"PUT /api/v1/files/data.bin HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice}\r\n"
            f"Content-Length: {MB // 2}\r\n\r\n"
        )
        connection.sendall(head.encode() + b"y" * (MB // 8))  # a quarter of it, then the connection drops
    workspace = server.settings.workspaces_dir / "alice"
    deadline = time.monotonic() + 10
    while list(workspace.glob(f"{UPLOAD_PREFIX}*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(workspace.glob(f"{UPLOAD_PREFIX}*"))
    assert http.get("/files/data.bin", headers=bearer(alice)).content == b"complete old version"


@pytest.mark.usefixtures("bubblewrap")
def test_runs(http: httpx.Client, people: People, engine: Engine) -> None:
    alice = bearer(people.account("alice"))
    script = b"import sys\nprint('args', sys.argv[1:])\nprint('warning', file=sys.stderr)\n"
    script += b"open('out.txt', 'w').write('ok')\n"
    http.put("/files/hello.py", content=script, headers=alice)
    answer = http.post("/runs", json={"script": "hello.py", "args": ["a b", "--flag"]}, headers=alice)
    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert (outcome["exit_status"], outcome["stdout"], outcome["stderr"]) == (
        0,
        "args ['a b', '--flag']\n",
        "warning\n",
    )
    assert outcome["duration"] > 0
    assert http.get("/files/out.txt", headers=alice).content == b"ok"

    http.put("/files/fails.py", content=b"raise SystemExit(3)\n", headers=alice)
    assert http.post("/runs", json={"script": "fails.py"}, headers=alice).json()["exit_status"] == 3
    http.put("/files/forever.py", content=b"while True:\n    pass\n", headers=alice)
    detail = assert_problem(http.post("/runs", json={"script": "forever.py"}, headers=alice), 504, "sandbox_timeout")
    assert "did not finish within 3 s and was killed" in detail
    assert_problem(http.post("/runs", json={"script": "../bob/x.py"}, headers=alice), 400, "invalid_input")
    assert_problem(http.post("/runs", json={"script": "missing.py"}, headers=alice), 404, "not_found")
    assert_problem(http.post("/runs", json={"args": []}, headers=alice), 422, "invalid_request")
    with session_factory(engine)() as session:
        runs = list_events(session, actor="alice", kind="workspace.run")
    assert [event.detail["exit_status"] for event in runs] == ["timeout", 3, 0]
