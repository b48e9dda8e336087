"""`nephelae files put | get | ls | rm` and `nephelae run`, in-process, end to end against a real server.

The commands find the server and the token in NEPHELAE_URL and NEPHELAE_TOKEN, as from a laptop.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, session_factory, upgrade
from tests.api.support import People
from tests.cli.test_cli import run
from tests.sandbox.conftest import bubblewrap
from tests.support.server import RunningServer

__all__ = ["bubblewrap"]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The shared `settings`, with a 2 s limit per run."""
    settings = load_settings(tmp_path / "home", database_url=database_url, task_timeout_seconds=2, task_memory_mb=1024)
    prepare_home(settings)
    engine = make_engine(settings.database)
    upgrade(engine)
    engine.dispose()
    return settings


@dataclass
class User:
    """`nephelae ...` run in-process, configured by NEPHELAE_URL and NEPHELAE_TOKEN alone."""

    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        return run(self.capsys, *argv)

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)

    def fails(self, expected: str, *argv: str) -> None:
        """A command that must fail with `expected` (a `code: ...` prefix) in one line, without a traceback."""
        code, out, err = self(*argv)
        assert code == 1, (out, err)
        assert err.startswith(expected), err
        assert err.count("\n") == 1 and "Traceback" not in out + err


@pytest.fixture
def user(
    capsys: pytest.CaptureFixture[str],
    server: RunningServer,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> User:
    """The CLI of alice, on her laptop (the current directory), talking to the server over HTTP."""
    monkeypatch.setenv("NEPHELAE_URL", server.url)
    monkeypatch.setenv("NEPHELAE_TOKEN", People(session_factory(engine)).account("alice"))
    monkeypatch.setenv("COLUMNS", "250")
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    monkeypatch.chdir(laptop)
    return User(capsys)


def test_put_ls_get_rm(user: User, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    Path("sst.bin").write_bytes(data)
    code, out, _ = user("files", "put", "sst.bin")
    assert code == 0 and "Uploaded sst.bin to sst.bin (300000 bytes)." in out
    Path("tool.sh").write_text("#!/bin/sh\necho hi\n")
    Path("tool.sh").chmod(0o755)
    assert user.json("files", "put", "tool.sh", "bin/")["path"] == "bin/tool.sh"
    assert user.json("files", "put", "sst.bin", "results/2020/copy.bin")["size"] == 300_000

    assert [entry["path"] for entry in user.json("files", "ls")] == ["bin", "results", "sst.bin"]
    listing = user.json("files", "ls", "--recursive")
    assert [entry["path"] for entry in listing if not entry["is_dir"]] == [
        "bin/tool.sh",
        "results/2020/copy.bin",
        "sst.bin",
    ]
    code, out, _ = user("files", "ls", "results/2020/")
    assert code == 0 and "results/2020/copy.bin" in out and "300000" in out
    workspace = tmp_path / "home" / "workspaces" / "alice"
    assert os.access(workspace / "bin" / "tool.sh", os.X_OK)  # a program for campaigns stays executable

    Path("downloads").mkdir()
    code, _, err = user("files", "get", "results/2020/copy.bin", "downloads")
    assert code == 0 and "Saved results/2020/copy.bin to downloads/copy.bin (300000 bytes)." in err
    assert Path("downloads/copy.bin").read_bytes() == data
    assert user("files", "get", "sst.bin")[0] == 0 and Path("sst.bin").read_bytes() == data

    user.fails("conflict: results is a directory that is not empty", "files", "rm", "results")
    code, out, _ = user("files", "rm", "results", "--recursive")
    assert code == 0 and "Removed results." in out
    assert [entry["path"] for entry in user.json("files", "ls")] == ["bin", "sst.bin"]
    code, out, _ = user("files", "ls", "bin", "-r")
    assert code == 0 and "bin/tool.sh" in out


def test_errors_are_one_line(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    user.fails("not_found: missing.nc does not exist in your workspace", "files", "get", "missing.nc")
    assert not list(Path.cwd().iterdir())  # no partial download left behind
    user.fails("not_found:", "files", "rm", "missing.nc")
    user.fails(
        "invalid_input: workspace path '../bob/secret.txt' has a `..` component", "files", "get", "../bob/secret.txt"
    )
    Path("x.txt").write_text("x")
    user.fails("invalid_input: workspace path '/etc/x.txt' is absolute", "files", "put", "x.txt", "/etc/x.txt")
    user.fails("invalid_input: nothing.txt is not a file on this machine", "files", "put", "nothing.txt")
    monkeypatch.setenv("NEPHELAE_TOKEN", "not-a-token")
    user.fails("unauthenticated: unknown token", "files", "ls")


@pytest.mark.usefixtures("bubblewrap")
def test_run_prints_the_output_and_exits_with_the_scripts_status(user: User) -> None:
    Path("hello.py").write_text(
        "import sys\nprint('hello', *sys.argv[1:])\nprint('careful', file=sys.stderr)\nsys.exit(int(sys.argv[2]))\n"
    )
    user("files", "put", "hello.py", "scripts/hello.py")
    code, out, err = user("run", "scripts/hello.py", "world", "0")
    assert (code, out, err) == (0, "hello world 0\n", "careful\n")
    code, out, err = user("run", "scripts/hello.py", "--again", "3")
    assert (code, out, err) == (3, "hello --again 3\n", "careful\n")  # options after the script are the script's
    code, out, _ = user("run", "--json", "scripts/hello.py", "json", "0")
    outcome = json.loads(out)
    assert outcome["exit_status"] == 0 and outcome["stdout"] == "hello json 0\n" and outcome["duration"] > 0

    Path("forever.py").write_text("while True:\n    pass\n")
    user("files", "put", "forever.py")
    user.fails("sandbox_timeout: ", "run", "forever.py")
    user.fails("not_found: ", "run", "nothing.py")
    code, out, _ = user("run", "--help")
    assert code == 0 and "sandboxed" in out
    assert json.loads(user("files", "ls", "--json")[1])[0]["path"] == "forever.py"
