"""The `nephelae` program: options, `--json`, and errors as `code: detail` with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from nephelae.cli.main import EXIT_ERROR, app, main
from nephelae.db import head_revision

README = Path(__file__).resolve().parents[2] / "README.md"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process as a user would, returning (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), captured.out, captured.err


def test_db_upgrade_then_status(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", database_url)
    home = str(tmp_path / "home")
    code, out, _ = run(capsys, "db", "status", "--home", home, "--json")
    assert code == 0
    assert json.loads(out)["revision"] is None
    code, out, _ = run(capsys, "db", "upgrade", "--home", home, "--json")
    assert (code, json.loads(out)) == (0, {"revision": head_revision()})
    code, out, _ = run(capsys, "db", "status", "--home", home)
    assert code == 0
    assert "up to date" in out


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({"nephelae.toml": "port = "}, "configuration_error: "),
        ({"env": "NEPHELAE_DATABASE_URL=postgresql+psycopg://x@127.0.0.1:1/db"}, "unavailable: cannot reach"),
        ({"env": "NEPHELAE_DATABASE_URL=nonsense"}, "configuration_error: database URL 'nonsense'"),
        ({"env": "NEPHELAE_PORT=eighty"}, "configuration_error: invalid settings (port"),
    ],
)
def test_errors_are_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: dict[str, str],
    expected: str,
) -> None:
    if "nephelae.toml" in setup:
        (tmp_path / "nephelae.toml").write_text(setup["nephelae.toml"])
    if "env" in setup:
        name, value = setup["env"].split("=", 1)
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "db", "upgrade", "--home", str(tmp_path))
    assert code == EXIT_ERROR
    assert err.startswith(expected)
    assert err.count("\n") == 1
    assert "Traceback" not in out + err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("nephelae ")


def test_the_installed_program_runs() -> None:
    """The console script and `python -m nephelae` are wired to the same CLI."""
    executable = Path(sys.executable).with_name("nephelae")
    for command in ([str(executable), "--help"], [sys.executable, "-m", "nephelae", "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "demo" in result.stdout and "serve" in result.stdout


def _command_paths(group: Any, prefix: str = "nephelae") -> list[str]:
    """Every leaf command of a (Typer) command group, as typed: `nephelae db upgrade`."""
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        paths.extend(_command_paths(command, path) if hasattr(command, "commands") else [path])
    return paths


def test_every_command_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    paths = _command_paths(typer.main.get_command(app))
    assert "nephelae db upgrade" in paths
    missing = [path for path in paths if path not in readme]
    assert not missing, f"commands missing from README.md: {missing}"
