"""How the CLI talks to people and to scripts: Rich for people, `--json` for scripts, `code: detail` for errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def console() -> Console:
    return Console(highlight=False)


def error_console() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_error(code: str, detail: str) -> None:
    """Errors as `code: detail` on stderr, never a traceback."""
    sys.stderr.write(f"{code}: {detail}\n")


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """A progress reporter `report(label, done, total)`: a Rich bar on a terminal, silent with --json."""
    if not enabled:
        yield lambda _label, _done, _total: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=error_console(), transient=False) as progress:
        tasks: dict[str, Any] = {}

        def report(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done, total=total)

        yield report
