"""`nephelae analysis ...` through a real server (SQLite and PostgreSQL): -o FILE writes it, errors are one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nephelae.config import Settings
from tests.analysis.support import L4, Callers, serve_demo_l4
from tests.cli.test_cli import run
from tests.support.compliance import assert_cf_compliant
from tests.support.server import serve_in_thread

BOX = "--bbox=-60,-20,0,20"
DAYS = "--time=2020-01-01/2020-01-04"  # dates: whole days, the 4th included


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"analysis_max_cells": 2_000_000})  # a global analysis of 4 days is too big


@pytest.fixture
def alice(
    settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callers]:
    """The server's address and alice's token in the environment, as a user would set them."""
    callers = serve_demo_l4(engine, tmp_path_factory)
    with serve_in_thread(settings) as running:
        monkeypatch.setenv("NEPHELAE_URL", running.url)
        monkeypatch.setenv("NEPHELAE_TOKEN", callers.alice)
        yield callers


def analysis(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run(capsys, "analysis", *argv)


def test_outputs_are_written_to_the_file_named(
    capsys: pytest.CaptureFixture[str], alice: Callers, tmp_path: Path
) -> None:
    series = tmp_path / "series.json"
    code, out, err = analysis(capsys, "timeseries", L4, "-v", "analysed_sst", BOX, DAYS, "-o", str(series))
    assert code == 0, err
    assert f"Wrote {series}" in out
    document = json.loads(series.read_text())
    assert document["variable"] == "analysed_sst" and len(document["points"]) == 4

    code, out, err = analysis(capsys, "timeseries", L4, "-v", "analysed_sst,analysis_error", BOX, "-f", "csv")
    assert code == 0, err
    assert out.splitlines()[0] == "time,analysed_sst,analysis_error" and len(out.splitlines()) == 5

    subset = tmp_path / "box.nc"
    code, _, err = analysis(capsys, "subset", L4, "--variable", "analysed_sst", BOX, DAYS, "--output", str(subset))
    assert code == 0, err
    assert_cf_compliant(subset)

    picture = tmp_path / "map.png"
    code, _, err = analysis(capsys, "map", L4, "-v", "analysed_sst", "--bbox=170,-10,-170,10", "-o", str(picture))
    assert code == 0, err
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], alice: Callers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(expected: str, *argv: str) -> None:
        code, out, err = analysis(capsys, *argv)
        assert code == 1, (out, err)
        assert err.startswith(expected) and err.count("\n") == 1 and "Traceback" not in out + err, err

    fails("invalid_input: a png answer is binary: give -o FILE", "timeseries", L4, "-v", "analysed_sst", "-f", "png")
    fails("invalid_input: bbox", "timeseries", L4, "-v", "analysed_sst", "--bbox=0,-91,10,10")
    fails("invalid_input: demo-l4-sst has no variable wind", "timeseries", L4, "-v", "wind", BOX)
    fails("request_too_large: this climatology reads about", "climatology", L4, "-v", "analysed_sst", "-o", "x.nc")
    fails("invalid_input: cannot write", "map", L4, "-v", "analysed_sst", BOX, "-o", str(tmp_path / "no" / "map.png"))
    monkeypatch.setenv("NEPHELAE_TOKEN", alice.bob)
    fails("forbidden: account bob has no access to dataset demo-l4-sst", "map", L4, "-v", "analysed_sst", "-o", "m.png")
