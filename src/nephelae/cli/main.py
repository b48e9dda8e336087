"""`nephelae`: one program for operators and scientists. Errors print as `code: detail` and exit non-zero."""

from __future__ import annotations

import logging
import os
import sys

import typer

from nephelae import __version__
from nephelae.cli import admin, analysis, campaigns, datasets, platform, search, session, ssh
from nephelae.cli import files as workspace_files
from nephelae.cli.output import print_error
from nephelae.errors import NephelaeError

EXIT_ERROR = 1
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="nephelae",
    help="Nephelae: process Earth-observation archives where they are stored.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(platform.serve)
app.command()(platform.demo)
app.add_typer(platform.db_app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(datasets.datasets_app, name="datasets")
app.command("search")(search.search)
app.add_typer(campaigns.campaigns_app, name="campaigns")
app.add_typer(analysis.analysis_app, name="analysis")
app.command("whoami")(session.whoami)
app.add_typer(workspace_files.files_app, name="files")
app.command("run", context_settings=workspace_files.RUN_CONTEXT)(workspace_files.run)
app.add_typer(ssh.ssh_app, name="ssh")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"nephelae {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Nephelae: process Earth-observation archives where they are stored."""


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every error becomes `code: detail` and a non-zero exit, never a traceback."""
    try:
        app(args=argv, prog_name="nephelae")
    except NephelaeError as error:
        print_error(error.code, error.detail)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        print_error("interrupted", "stopped by the user")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:
        if os.environ.get("NEPHELAE_DEBUG"):
            raise
        logging.getLogger("nephelae").debug("unexpected error", exc_info=error)
        print_error("internal_error", f"{type(error).__name__}: {error} (set NEPHELAE_DEBUG=1 for the traceback)")
        sys.exit(EXIT_INTERNAL)
