"""`nephelae search`: the granules of a dataset in a box and a time interval, through the HTTP API."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

import typer

from nephelae.cli.admin_home import note, print_table
from nephelae.cli.datasets import bbox_text, moment_text, user_client
from nephelae.cli.options import HomeOption
from nephelae.cli.output import JsonOption, print_json
from nephelae.client import MAX_PAGE_SIZE

DEFAULT_LIMIT = 100


def search(
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="Dataset id, as `nephelae datasets list` shows it.")
    ],
    bbox: Annotated[
        str | None,
        typer.Option(
            "--bbox",
            metavar="W,S,E,N",
            help="Box in degrees, e.g. --bbox -80,0,0,60; W > E crosses the antimeridian.",
        ),
    ] = None,
    time: Annotated[
        str | None,
        typer.Option(
            "--time",
            metavar="START/END",
            help="RFC 3339 dates or times, e.g. 2020-01-01/2020-01-31; '..' leaves an end open; one instant alone.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=1_000_000, help="At most N granules.")
    ] = DEFAULT_LIMIT,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Search a dataset's granules intersecting a box and a time interval, in time order (through the HTTP API)."""
    with user_client(home) as client:
        pages = client.granules(
            dataset, bbox=bbox, datetime=time, max_items=limit + 1, page_size=min(limit + 1, MAX_PAGE_SIZE)
        )
        found = list(islice(pages, limit + 1))  # one more than shown, to tell whether more match
    more, found = len(found) > limit, found[:limit]
    if json_output:
        print_json([granule.wire for granule in found])
    else:
        rows = [
            (granule.path, moment_text(granule.time_start), moment_text(granule.time_end), bbox_text(granule.bbox))
            for granule in found
        ]
        columns = ("path", "start (UTC)", "end (UTC)", "bbox W,S,E,N")
        print_table(f"Granules of {dataset}", columns, rows, empty="No granules match.")
    if more:
        shown = f"{limit} granules" if limit > 1 else "granule"
        note(f"Showing the first {shown}; more match. Narrow the search or raise --limit.")
