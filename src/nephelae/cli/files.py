"""`nephelae files put | get | ls | rm` and `nephelae run SCRIPT.py`: your workspace, through the HTTP API.

Like every user command they reach the server at NEPHELAE_URL with NEPHELAE_TOKEN (else the home's own server and
demo user), so they behave the same from a laptop and from an SSH session on the platform.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from nephelae.cli.admin_home import note, print_table, say
from nephelae.cli.datasets import moment_text, user_client
from nephelae.cli.options import HomeOption
from nephelae.cli.output import JsonOption, print_json
from nephelae.client.files import RemoteFile

files_app = typer.Typer(help="Your workspace on the platform: put, get, list and remove files.", no_args_is_help=True)

# `nephelae run [OPTIONS] SCRIPT.py ARGS...`: everything after the script is the script's, `--flags` included.
RUN_CONTEXT = {"allow_interspersed_args": False, "ignore_unknown_options": True}
RemotePath = Annotated[str, typer.Argument(metavar="REMOTE", help="A path in your workspace, e.g. results/sst.nc.")]


@files_app.command("put")
def put(
    local: Annotated[Path, typer.Argument(metavar="LOCAL", help="The file to upload.")],
    remote: Annotated[
        str | None,
        typer.Argument(
            metavar="[REMOTE]", help="Where in your workspace; its top by default; ending in / a directory."
        ),
    ] = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Upload a file into your workspace (replacing one of that name; never half-written)."""
    target = remote or local.name
    if target.endswith("/"):
        target += local.name
    with user_client(home) as client:
        uploaded = client.files.put(local, target)
    if json_output:
        print_json(_wire(uploaded))
    else:
        say(f"Uploaded {local} to {uploaded.path} ({uploaded.size} bytes).")


@files_app.command("get")
def get(
    remote: RemotePath,
    local: Annotated[
        Path | None, typer.Argument(metavar="[LOCAL]", help="Where to save it; ./NAME by default; a directory works.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Download a file of your workspace (the local file is replaced only once the download is complete)."""
    name = remote.rstrip("/").rsplit("/", 1)[-1]
    target = local or Path(name)
    if target.is_dir():
        target = target / name
    with user_client(home) as client:
        saved = client.files.get(remote, target)
    note(f"Saved {remote} to {saved} ({saved.stat().st_size} bytes).")


@files_app.command("ls")
def ls(
    path: Annotated[
        str, typer.Argument(metavar="[PATH]", help="A directory of your workspace; its top by default.")
    ] = "",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="List subdirectories' contents too.")] = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the files of your workspace: path, size, modification time (UTC)."""
    with user_client(home) as client:
        entries = client.files.ls(path, recursive=recursive)
    if json_output:
        print_json([_wire(entry) for entry in entries])
        return
    rows = [
        (f"{entry.path}/" if entry.is_dir else entry.path, "" if entry.is_dir else entry.size, moment_text(entry.mtime))
        for entry in entries
    ]
    print_table(f"Workspace: {path or '.'}", ("path", "size", "modified (UTC)"), rows, empty="No files.")


@files_app.command("rm")
def rm(
    remote: RemotePath,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Remove a directory and its contents.")] = False,
    home: HomeOption = None,
) -> None:
    """Remove a file (or an empty directory, or a whole one with --recursive) from your workspace."""
    with user_client(home) as client:
        client.files.delete(remote, recursive=recursive)
    say(f"Removed {remote}.")


def run(
    script: Annotated[str, typer.Argument(metavar="SCRIPT.py", help="A Python script of your workspace.")],
    args: Annotated[list[str] | None, typer.Argument(metavar="[ARGS]...", help="Its arguments.")] = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run a workspace script, sandboxed next to the archive; prints its output and exits with its status.

    It runs as `python SCRIPT.py ARGS...` in your workspace (writable), with the datasets you may read (read-only),
    xarray and `nephelae.toolbox`; no network, the platform's time and memory limits. Options of `nephelae run`
    go before SCRIPT.py: everything after it is passed to the script.
    """
    with user_client(home) as client:
        outcome = client.files.run(script, args or [])
    if json_output:
        print_json(vars(outcome))
    else:
        sys.stdout.write(outcome.stdout)
        sys.stderr.write(outcome.stderr)
    if outcome.exit_status:
        raise typer.Exit(outcome.exit_status)


def _wire(entry: RemoteFile) -> dict[str, object]:
    return {"path": entry.path, "size": entry.size, "mtime": entry.mtime.isoformat(), "is_dir": entry.is_dir}
