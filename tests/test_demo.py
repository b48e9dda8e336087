"""`nephelae demo`, end to end, as a newcomer runs it: a real process, a real port, both database backends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

DEMO_DAYS = "3"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(database_url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEPHELAE_")}
    if database_url.startswith("postgresql"):
        env["NEPHELAE_DATABASE_URL"] = database_url
    return env


def _wait_for_health(url: str, process: subprocess.Popen[str], timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"demo exited with {process.returncode}: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=2)
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError("the demo server did not answer /api/v1/health in time")


def test_demo_builds_a_home_and_serves_it(tmp_path: Path, database_url: str) -> None:
    home, port = tmp_path / "demo-home", _free_port()
    command = [
        sys.executable,
        "-m",
        "nephelae",
        "demo",
        "--home",
        str(home),
        "--port",
        str(port),
        "--days",
        DEMO_DAYS,
    ]
    process = subprocess.Popen(
        command, env=_environment(database_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        health = _wait_for_health(url, process)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        landing = httpx.get(f"{url}/")
        assert landing.headers["content-type"].startswith("text/html")
        missing = httpx.get(f"{url}/no/such/thing")
        assert (missing.status_code, missing.headers["content-type"]) == (404, "application/problem+json")
        credentials = json.loads((home / "demo-credentials.json").read_text())
        assert credentials["url"] == url
        for who, role in (("admin", "admin"), ("user", "user")):
            me = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {credentials[who]['token']}"})
            assert me.status_code == 200, me.text
            assert (me.json()["username"], me.json()["role"]) == (credentials[who]["username"], role)
            assert me.json()["projects"] == ["oceanheatflux"]
        user = {"Authorization": f"Bearer {credentials['user']['token']}"}
        datasets = {d["id"]: d for d in httpx.get(f"{url}/api/v1/datasets", headers=user).json()}
        assert {key: datasets[key]["granule_count"] for key in datasets} == {
            "demo-l4-sst": 3,
            "demo-l2p-sst": 15,
            "demo-surface-met": 3,
            "demo-monthly-sst": 1,  # the example campaign's output: one month
        }
        [campaign] = httpx.get(f"{url}/api/v1/campaigns", headers=user).json()
        assert (campaign["name"], campaign["status"]) == ("demo-monthly-sst", "completed")
        assert all(dataset["unreadable_count"] == 0 for dataset in datasets.values())
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert (home / "demo-credentials.json").stat().st_mode & 0o077 == 0
    for name in ("nephelae.toml", "archive", "workspaces", "campaigns", "logs"):
        assert (home / name).exists()
    assert any((home / "archive").rglob("*.nc"))


def test_demo_no_serve_is_repeatable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    command = [
        sys.executable,
        "-m",
        "nephelae",
        "demo",
        "--home",
        str(home),
        "--no-serve",
        "--json",
        "--days",
        DEMO_DAYS,
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    files = sorted((home / "archive").rglob("*.nc"))
    stamps = [path.stat().st_mtime_ns for path in files]
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)  # same URL, same tokens
    assert json.loads(first.stdout)["user"]["username"] == "demo"
    assert [path.stat().st_mtime_ns for path in sorted((home / "archive").rglob("*.nc"))] == stamps


def test_demo_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = [sys.executable, "-m", "nephelae", "serve", "--home", str(tmp_path), "--port", str(port)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"port {port}" in result.stderr
