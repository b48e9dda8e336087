"""`nephelae datasets ...`: operators register and index archives; users list and show the datasets they may read.

`add` and `index` act on the home's database directly, like `nephelae admin`, and are audited with the actor
`operator:<login name>`. `list` and `show` go through the HTTP API with the Python client (see `user_client`), so
that they behave the same from a laptop and from an SSH session.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from nephelae.catalog.datasets import add_dataset, get_dataset
from nephelae.cli.admin_home import iso, open_session, operator_actor, print_table, say
from nephelae.cli.options import HomeOption, settings_from
from nephelae.cli.output import JsonOption, print_json, progress_bar
from nephelae.client import BBox, Client
from nephelae.client import Dataset as DatasetInfo
from nephelae.db.models import Dataset
from nephelae.errors import AuthenticationRequired, InvalidInput
from nephelae.ssh.inprocess import API_TRANSPORT

URL_ENV = "NEPHELAE_URL"
TOKEN_ENV = "NEPHELAE_TOKEN"  # noqa: S105  # the name of a variable, not a secret
# Written by `nephelae demo` (DESIGN.md contract); named here so that user commands need not load the demo (xarray).
DEMO_CREDENTIALS = "demo-credentials.json"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # a scheme: an fsspec URL rather than a local path

DatasetArgument = Annotated[
    str, typer.Argument(metavar="ID", help="Dataset id: lower-case letters, digits, '-' or '_'.", show_default=False)
]

datasets_app = typer.Typer(
    help="Datasets: register and index archives (operators); list and show those you may read (users).",
    no_args_is_help=True,
)


# Operator commands, on the home's database.


def archive_root(root: str) -> str:
    """ROOT as stored: an fsspec URL as given; a local directory (or file:// URL) absolute, and checked to exist."""
    if _URL.match(root) and not root.startswith("file://"):
        return root
    path = Path(root.removeprefix("file://")).expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise InvalidInput(
            f"root {root} {what}; give the archive's directory, or an fsspec URL such as s3://bucket/archive"
        )
    return str(path.resolve())


def dataset_record(dataset: Dataset) -> dict[str, Any]:
    """A dataset as the operator commands print it with `--json`."""
    return {
        "id": dataset.id,
        "title": dataset.title,
        "description": dataset.description,
        "license": dataset.license,
        "root": dataset.root,
        "pattern": dataset.pattern,
        "public": dataset.public,
        "granule_count": dataset.granule_count,
        "unreadable_count": dataset.unreadable_count,
        "created_at": iso(dataset.created_at),
        "indexed_at": iso(dataset.indexed_at),
    }


@datasets_app.command("add")
def add(
    dataset_id: DatasetArgument,
    root: Annotated[
        str, typer.Argument(metavar="ROOT", help="The archive's directory, or an fsspec URL (s3://bucket/prefix).")
    ],
    pattern: Annotated[
        str, typer.Option("--pattern", metavar="GLOB", help="The granules, relative to ROOT, e.g. '**/*.nc'.")
    ],
    projects: Annotated[
        list[str] | None,
        typer.Option("--project", metavar="P", help="A project whose members may read it; repeat for several."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", metavar="T", help="Title [default: the id].")] = None,
    description: Annotated[str, typer.Option("--description", metavar="D", help="What it holds.")] = "",
    license: Annotated[str, typer.Option("--license", metavar="L", help="SPDX id or name.")] = "proprietary",
    public: Annotated[bool, typer.Option("--public", help="Readable by every approved account.")] = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register an archive as a dataset (operators, on the home); then index it with `nephelae datasets index ID`."""
    location = archive_root(root)
    with open_session(settings_from(home)) as session:
        dataset = add_dataset(
            session,
            dataset_id,
            location,
            pattern,
            title=title,
            description=description,
            license=license,
            projects=projects or [],
            public=public,
            actor=operator_actor(),
        )
        record = dataset_record(dataset)
    if json_output:
        print_json(record | {"projects": projects or []})
        return
    readers = "every approved account" if public else f"projects {', '.join(projects)}" if projects else "admins only"
    say(f"Registered {dataset_id}: {location} ({pattern}), readable by {readers}.")
    say(f"Index it with `nephelae datasets index {dataset_id}`.")


@datasets_app.command("index")
def index(
    dataset_id: DatasetArgument,
    workers: Annotated[
        int | None,
        typer.Option("--workers", metavar="N", min=1, max=256, help="Files read in parallel [default: automatic]."),
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Accept a root with no file at all, forgetting every granule."),
    ] = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Index a dataset (operators, on the home): read new and changed files, forget removed ones. Safe to repeat."""
    from nephelae.catalog.indexer import index_dataset  # file readers (xarray...) only for the command that reads

    with open_session(settings_from(home)) as session:
        get_dataset(session, dataset_id)  # a clear not_found before any work
        session.commit()  # end this read: the indexer writes through connections of its own
        engine = session.get_bind()
        assert isinstance(engine, Engine)
        with progress_bar(enabled=not json_output) as report:
            result = index_dataset(engine, dataset_id, workers=workers, progress=report, allow_empty=allow_empty)
    counts = dataclasses.asdict(result)
    if json_output:
        print_json({"dataset": dataset_id, **counts})
        return
    seconds = counts.pop("seconds", 0.0)
    say(
        f"Indexed {dataset_id} in {seconds:.1f} s: "
        + ", ".join(f"{value} {name}" for name, value in counts.items())
        + "."
    )
    say(f"`nephelae search {dataset_id}` finds its granules.")


# User commands, through the HTTP API.


def user_client(home: Path | None) -> Client:
    """A client of the platform for user commands.

    The server is NEPHELAE_URL, else the home's own (its `url` setting); the token is NEPHELAE_TOKEN, else the
    home's demo user from `demo-credentials.json` (written by `nephelae demo`).
    """
    url, token = os.environ.get(URL_ENV), os.environ.get(TOKEN_ENV)
    if not url or not token:
        settings = settings_from(home)
        url = url or settings.url
        token = token or _demo_token(settings.home)
    if not token:
        raise AuthenticationRequired(
            f"set {TOKEN_ENV} to your API token (an operator creates one: `nephelae admin tokens create USER`) "
            f"and {URL_ENV} to the platform's address, e.g. {URL_ENV}=https://nephelae.example.org"
        )
    # Inside the SSH gateway, the API answers in-process, seeing the SSH client's address (see nephelae.ssh).
    return Client(url, token, transport=API_TRANSPORT.get())


def _demo_token(home: Path) -> str | None:
    try:
        token = json.loads((home / DEMO_CREDENTIALS).read_text(encoding="utf-8"))["user"]["token"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return token if isinstance(token, str) and token else None


def bbox_text(bbox: BBox | None) -> str:
    return "" if bbox is None else ",".join(f"{value:g}" for value in bbox)


def moment_text(value: Any) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


@datasets_app.command("list")
def list_datasets(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """List the datasets you may read (through the HTTP API): granules, time coverage, bounding box."""
    with user_client(home) as client:
        found = client.datasets()
    if json_output:
        print_json([dataset.wire for dataset in found])
        return
    rows = [
        (
            dataset.id,
            dataset.title,
            dataset.granule_count,
            dataset.unreadable_count,
            moment_text(dataset.time_start),
            moment_text(dataset.time_end),
            bbox_text(dataset.bbox),
        )
        for dataset in found
    ]
    columns = ("id", "title", "granules", "unreadable", "from (UTC)", "to (UTC)", "bbox W,S,E,N")
    print_table(
        "Datasets", columns, rows, empty="No datasets you may read; ask an operator to add one to your project."
    )


def _variable_text(variable: dict[str, Any]) -> str:
    units = f" [{variable['units']}]" if variable.get("units") else ""
    label = variable.get("long_name") or variable.get("standard_name") or ""
    return f"{variable.get('name')}{units}" + (f": {label}" if label else "")


def _detail_rows(dataset: DatasetInfo) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("id", dataset.id),
        ("title", dataset.title),
        ("description", dataset.description),
        ("license", dataset.license),
        ("public", "yes" if dataset.public else "no"),
        ("granules", f"{dataset.granule_count} ({dataset.unreadable_count} unreadable)"),
        ("time (UTC)", f"{moment_text(dataset.time_start)} to {moment_text(dataset.time_end)}"),
        ("bbox W,S,E,N", bbox_text(dataset.bbox)),
        ("variables", "\n".join(_variable_text(variable) for variable in dataset.variables)),
        ("indexed", moment_text(dataset.indexed_at) or "never"),
    ]
    if dataset.root is not None:  # admins only
        rows += [("root", dataset.root), ("pattern", dataset.pattern)]
    return rows


@datasets_app.command("show")
def show(dataset_id: DatasetArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Show one dataset (through the HTTP API): coverage, variables, license; its storage too for admins."""
    with user_client(home) as client:
        dataset = client.dataset(dataset_id)
    if json_output:
        print_json(dataset.wire)
    else:
        print_table(f"Dataset {dataset_id}", ("field", "value"), _detail_rows(dataset))
