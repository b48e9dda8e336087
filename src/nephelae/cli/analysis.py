"""`nephelae analysis timeseries|subset|climatology|map`: small analyses through the HTTP API, saved with -o FILE.

A text answer (JSON, CSV) without -o is printed; NetCDF and PNG need -o. Errors print as `code: detail`, e.g. a
request too large to answer within seconds, which says which campaign to run instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from nephelae.cli.admin_home import say
from nephelae.cli.datasets import user_client
from nephelae.cli.options import HomeOption
from nephelae.errors import InvalidInput

analysis_app = typer.Typer(
    help="Analyses answered within seconds (area-mean time series, subsets, climatologies, maps), via the HTTP API.",
    no_args_is_help=True,
)

DatasetArgument = Annotated[
    str, typer.Argument(metavar="DATASET", help="Dataset id, as `nephelae datasets list` shows it.")
]
VariableOption = Annotated[
    list[str],
    typer.Option("--variable", "-v", metavar="NAME", help="A variable (repeat, or comma-separate, for several)."),
]
BBoxOption = Annotated[
    str | None,
    typer.Option("--bbox", metavar="W,S,E,N", help="Box in degrees, e.g. --bbox -60,-20,0,20; W > E crosses 180."),
]
TimeOption = Annotated[
    str | None,
    typer.Option("--time", metavar="START/END", help="RFC 3339 dates or times, e.g. 2020-01-01/2020-01-31."),
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the answer to FILE.", dir_okay=False)
]
Format = Literal["json", "csv", "netcdf", "png"]
TEXT_FORMATS = ("json", "csv")


@analysis_app.command("timeseries")
def timeseries(
    dataset: DatasetArgument,
    variable: VariableOption,
    bbox: BBoxOption = None,
    time: TimeOption = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="json, csv, netcdf or png.")] = "json",
    output: OutputOption = None,
    home: HomeOption = None,
) -> None:
    """The cos-latitude weighted mean over the box of each variable, per time step."""
    _run("timeseries", dataset, variable, bbox, time, format, output, home)


@analysis_app.command("subset")
def subset(
    dataset: DatasetArgument,
    variable: VariableOption,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The NetCDF file to write.")],
    bbox: BBoxOption = None,
    time: TimeOption = None,
    home: HomeOption = None,
) -> None:
    """The box, interval and variables of the dataset as one CF-1.8 NetCDF file."""
    _run("subset", dataset, variable, bbox, time, "netcdf", output, home)


@analysis_app.command("climatology")
def climatology(
    dataset: DatasetArgument,
    variable: VariableOption,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The NetCDF file to write.")],
    bbox: BBoxOption = None,
    time: TimeOption = None,
    period: Annotated[Literal["month", "dayofyear"], typer.Option("--period", help="month or dayofyear.")] = "month",
    home: HomeOption = None,
) -> None:
    """The mean of each variable per month (or day of the year) over the interval, on the grid of the box."""
    _run("climatology", dataset, variable, bbox, time, "netcdf", output, home, period=period)


@analysis_app.command("map")
def map_(
    dataset: DatasetArgument,
    variable: VariableOption,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The PNG or NetCDF file to write.")],
    bbox: BBoxOption = None,
    time: TimeOption = None,
    format: Annotated[Literal["png", "netcdf"], typer.Option("--format", "-f", help="png or netcdf.")] = "png",
    home: HomeOption = None,
) -> None:
    """The time mean over the interval on the grid of the box: a PNG quicklook or NetCDF."""
    _run("map", dataset, variable, bbox, time, format, output, home)


def _run(
    operation: str,
    dataset: str,
    variables: list[str],
    bbox: str | None,
    time: str | None,
    format: str,
    output: Path | None,
    home: Path | None,
    *,
    period: str | None = None,
) -> None:
    if output is None and format not in TEXT_FORMATS:
        raise InvalidInput(f"a {format} answer is binary: give -o FILE to write it")
    variables = [name.strip() for item in variables for name in item.split(",") if name.strip()]
    with user_client(home) as client:
        answer: bytes = client.analysis.run(
            operation, dataset, variables, bbox=bbox, time=time, format=format, period=period, decode=False
        )
    _deliver(answer, output)


def _deliver(answer: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(answer.decode())
        return
    try:
        output.write_bytes(answer)
    except OSError as error:
        raise InvalidInput(f"cannot write {output}: {error.strerror or error}") from None
    say(f"Wrote {output} ({len(answer):,} bytes).")
