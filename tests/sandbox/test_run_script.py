"""`run_script`, behind `nephelae run SCRIPT.py`: one script in the same sandbox, its output captured and bounded."""

from __future__ import annotations

import pytest

from nephelae.sandbox import SandboxTimeout, run_script
from nephelae.sandbox.runner import OUTPUT_LIMIT
from tests.sandbox.layout import SMALL, Home

MAIN = """\
import sys
from pathlib import Path

import xarray as xr

granule, output = sys.argv[1:]
with xr.open_dataset(granule) as dataset:
    print("variables:", *sorted(dataset.data_vars))
Path(output).write_text("done")
print("a warning", file=sys.stderr)
"""


def _script(home: Home, name: str, source: str) -> None:
    (home.alice / name).write_text(source)


def test_a_script_runs_with_its_arguments_and_its_output_is_captured(home: Home) -> None:
    _script(home, "main.py", MAIN)
    output = home.output / "done.txt"
    result = run_script(
        home.alice / "main.py", [str(home.granule), str(output)], home.mounts, SMALL, workdir=home.alice
    )
    assert result.returncode == 0, result.stderr
    assert result.args == [str(home.alice / "main.py"), str(home.granule), str(output)]
    assert b"variables: analysed_sst" in result.stdout
    assert result.stderr == b"a warning\n"
    assert output.read_text() == "done"


def test_a_failing_script_exits_non_zero_with_its_traceback(home: Home) -> None:
    _script(home, "bad.py", "import json\n\njson.loads('{')\n")
    result = run_script(home.alice / "bad.py", [], home.mounts, SMALL, workdir=home.alice)
    assert result.returncode == 1
    assert f'File "{home.alice / "bad.py"}", line 3'.encode() in result.stderr
    assert b"JSONDecodeError" in result.stderr
    assert b"runpy" not in result.stderr and b"nephelae/sandbox" not in result.stderr


def test_a_script_that_cannot_reach_the_network_or_bob(home: Home) -> None:
    source = f"""\
import socket
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2)
except OSError as error:
    print(type(error).__name__)
print(open({str(home.bob / "secret.txt")!r}).read())
"""
    _script(home, "escape.py", source)
    result = run_script(home.alice / "escape.py", [], home.mounts, SMALL, workdir=home.alice)
    assert result.stdout == b"ConnectionRefusedError\n"
    assert result.returncode == 1 and b"FileNotFoundError" in result.stderr


def test_output_is_bounded(home: Home) -> None:
    _script(home, "loud.py", "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 100_000)\n")
    result = run_script(home.alice / "loud.py", [], home.mounts, SMALL, workdir=home.alice)
    assert result.returncode == 0
    assert len(result.stdout) < OUTPUT_LIMIT + 100
    assert result.stdout.startswith(b"[") and b"bytes of earlier output dropped" in result.stdout[:100]


def test_a_script_past_its_timeout_is_killed(home: Home) -> None:
    _script(home, "forever.py", "print('started', flush=True)\nwhile True:\n    pass\n")
    limits = SMALL.__class__(**{**SMALL.__dict__, "timeout_seconds": 1.0})
    with pytest.raises(SandboxTimeout, match="did not finish") as raised:
        run_script(home.alice / "forever.py", [], home.mounts, limits, workdir=home.alice)
    assert raised.value.log == ""  # stdout is not the log; stderr stayed empty
