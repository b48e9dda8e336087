"""`nephelae datasets ...` and `nephelae search`: operator commands on the home, user commands through a real server.

Run in-process, on SQLite and PostgreSQL. The user commands find the server and the token in NEPHELAE_URL and
NEPHELAE_TOKEN, else in the home (its `url` setting and the demo user of `demo-credentials.json`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.db.models import Dataset
from tests.api.test_datasets import Catalog, build_catalog
from tests.cli.test_admin import Admin
from tests.support.server import RunningServer, serve_in_thread


@pytest.fixture
def operator(capsys: pytest.CaptureFixture[str], settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Admin:
    """`nephelae ... --home HOME` on a migrated home of each backend, with wide tables."""
    assert settings.database_url is not None
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COLUMNS", "250")
    return Admin(capsys, settings.home)


@pytest.fixture
def served(settings: Settings, engine: Engine) -> Iterator[tuple[RunningServer, Catalog]]:
    """The platform served on loopback, with the catalog of the HTTP tests."""
    catalog = build_catalog(engine)
    with serve_in_thread(settings) as running:
        yield running, catalog


def test_add_registers_an_archive(
    operator: Admin, tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "archive").mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    operator("admin", "projects", "create", "oceanheatflux")
    monkeypatch.chdir(tmp_path)
    added = operator.json(
        *("datasets", "add", "sst", "archive", "--pattern", "**/*.nc", "--project", "oceanheatflux"),
        *("--title", "Daily SST", "--license", "CC-BY-4.0", "--description", "Foundation SST."),
    )
    assert added["root"] == str(tmp_path / "archive") and added["pattern"] == "**/*.nc"  # absolute
    assert (added["title"], added["license"], added["projects"], added["public"]) == (
        "Daily SST",
        "CC-BY-4.0",
        ["oceanheatflux"],
        False,
    )
    assert operator.json("admin", "projects", "list")[0]["datasets"] == ["sst"]
    _, out, _ = operator("datasets", "add", "bucket", "s3://eo-archive/sst", "--pattern", "*.nc", "--public")
    assert "Registered bucket: s3://eo-archive/sst (*.nc), readable by every approved account." in out
    assert "nephelae datasets index bucket" in out

    operator.fails("conflict: dataset 'sst' already exists", "datasets", "add", "sst", "archive", "--pattern", "*.nc")
    operator.fails("invalid_input: root nowhere does not exist", "datasets", "add", "x", "nowhere", "--pattern", "*")
    operator.fails("invalid_input: root a-file is not a directory", "datasets", "add", "x", "a-file", "--pattern", "*")
    operator.fails(
        "invalid_input: pattern '../x' must be a glob relative to the root", "datasets", "add", "x", "archive",
        "--pattern", "../x",
    )  # fmt: skip
    operator.fails("invalid_input: dataset id 'Bad Id'", "datasets", "add", "Bad Id", "archive", "--pattern", "*")
    operator.fails(
        "not_found: no project named 'nope'", "datasets", "add", "x", "archive", "--pattern", "*", "--project", "nope"
    )
    with session_factory(engine)() as session:
        assert sorted(dataset.id for dataset in session.query(Dataset)) == ["bucket", "sst"]  # nothing half-added


def test_index_reads_a_demo_archive(operator: Admin, tmp_path: Path) -> None:
    from nephelae.cli.datasets import DEMO_CREDENTIALS
    from nephelae.demo import CREDENTIALS_FILE
    from nephelae.demo.archive import build_demo_archive

    assert DEMO_CREDENTIALS == CREDENTIALS_FILE  # the user commands read what the demo writes

    (l2p,) = [dataset for dataset in build_demo_archive(tmp_path / "archive", days=1) if dataset.id == "demo-l2p-sst"]
    operator("datasets", "add", "swaths", str(l2p.root), "--pattern", l2p.pattern)
    report = operator.json("datasets", "index", "swaths")
    assert (report["dataset"], report["added"], report["unreadable"]) == ("swaths", l2p.files, 0)
    code, out, _ = operator("datasets", "index", "swaths", "--workers", "2")
    assert code == 0 and "Indexed swaths in " in out and f"{l2p.files} unchanged" in out and "0 added" in out
    operator.fails("not_found: no dataset 'nowhere'", "datasets", "index", "nowhere")


def test_user_commands_go_through_the_server(
    served: tuple[RunningServer, Catalog], operator: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, catalog = served
    monkeypatch.setenv("NEPHELAE_URL", server.url)
    monkeypatch.setenv("NEPHELAE_TOKEN", catalog.alice)
    assert [dataset["id"] for dataset in operator.json("datasets", "list")] == ["bathymetry", "sst-l2p", "sst-l4"]
    code, out, _ = operator("datasets", "list")
    assert code == 0 and "sst-l2p" in out and "-180,-20,180,90" in out and "2020-01-01 00:00:00" in out
    shown = operator.json("datasets", "show", "sst-l4")
    assert shown["granule_count"] == 10 and "root" not in shown
    code, out, _ = operator("datasets", "show", "sst-l4")
    assert code == 0 and "analysed_sst [kelvin]" in out and "root" not in out
    operator.fails("forbidden: account alice has no access to dataset ice-charts", "datasets", "show", "ice-charts")

    assert [granule["path"] for granule in operator.json("search", "sst-l2p", "--bbox", "-80,0,0,60")] == [
        "atlantic.nc"
    ]
    code, out, _ = operator("search", "sst-l2p", "--bbox", "172,-5,-175,5")
    assert code == 0 and "pacific.nc" in out and "170,-10,-170,10" in out and "atlantic" not in out
    code, out, err = operator("search", "sst-l4", "--time", "2020-01-02/2020-01-05", "--limit", "2")
    assert code == 0 and out.count(".nc") == 2 and "Showing the first 2 granules; more match." in err
    assert len(operator.json("search", "sst-l4", "--time", "2020-01-09T12:00:00Z/..")) == 2
    operator.fails("invalid_input: bbox '0,60,10,50': latitudes", "search", "sst-l4", "--bbox", "0,60,10,50")
    operator.fails("invalid_input: 'soon' is not an RFC 3339", "search", "sst-l4", "--time", "soon/..")

    monkeypatch.setenv("NEPHELAE_TOKEN", catalog.admin)
    code, out, _ = operator("datasets", "show", "sst-l4")
    assert code == 0 and "/archive/l4" in out


def test_user_commands_find_the_local_server_and_demo_token(
    served: tuple[RunningServer, Catalog], operator: Admin, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, catalog = served
    operator.fails("unauthenticated: set NEPHELAE_TOKEN to your API token", "datasets", "list")
    (settings.home / "nephelae.toml").write_text(f"port = {server.settings.port}\n")
    credentials = {"url": server.url, "user": {"username": "alice", "token": catalog.alice}}
    (settings.home / "demo-credentials.json").write_text(json.dumps(credentials))
    assert len(operator.json("datasets", "list")) == 3

    monkeypatch.setattr("nephelae.client.transport.time.sleep", lambda _seconds: None)
    monkeypatch.setenv("NEPHELAE_URL", "http://127.0.0.1:1")
    operator.fails("unavailable: cannot reach the Nephelae server at http://127.0.0.1:1", "search", "sst-l4")
    monkeypatch.setenv("NEPHELAE_URL", "ftp://nephelae.example.org")
    operator.fails("configuration_error: the server URL 'ftp://nephelae.example.org'", "datasets", "list")
