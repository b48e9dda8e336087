"""Commands that run the platform itself: `serve`, `demo`, `db upgrade`."""

from __future__ import annotations

import json
import socket
from typing import Annotated

import typer

from nephelae.cli.options import HomeOption, settings_from
from nephelae.cli.output import JsonOption, console, print_json, progress_bar
from nephelae.config import Settings, prepare_home
from nephelae.db import backend_name, current_revision, head_revision, make_engine, upgrade
from nephelae.errors import ConfigurationError

HostOption = Annotated[str | None, typer.Option("--host", help="Address to listen on [default: 127.0.0.1].")]
PortOption = Annotated[int | None, typer.Option("--port", help="Port to listen on [default: 8000].")]

db_app = typer.Typer(help="The platform database: migrations.", no_args_is_help=True)


def _migrate(settings: Settings) -> str:
    prepare_home(settings)
    engine = make_engine(settings.database)
    try:
        return upgrade(engine)
    finally:
        engine.dispose()


def serve_platform(settings: Settings) -> None:
    """Migrate the database, then serve the HTTP API and pages until interrupted."""
    import uvicorn

    from nephelae.api import create_app

    _migrate(settings)
    listening = _listen(settings.host, settings.port)
    console().print(f"Nephelae serving {settings.home.resolve()} on [bold]{settings.url}[/]")
    config = uvicorn.Config(create_app(settings), log_level=settings.log_level, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """Bind the server socket ourselves, so that a busy port is a clear error rather than a log line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise ConfigurationError(
            f"cannot listen on {host} port {port}: {error.strerror}; stop what uses it or choose another --port"
        ) from None
    listening.listen(2048)
    return listening


def serve(home: HomeOption = None, host: HostOption = None, port: PortOption = None) -> None:
    """Serve the HTTP API and the web pages (migrating the database first)."""
    serve_platform(settings_from(home, host=host, port=port))


def demo(
    home: HomeOption = None,
    host: HostOption = None,
    port: PortOption = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Set up, then exit without serving.")] = False,
    days: Annotated[int, typer.Option("--days", min=1, max=366, help="Days of demo data to generate.")] = 60,
    json_output: JsonOption = False,
) -> None:
    """Build a demo home: a synthetic archive, database, credentials; then serve it."""
    from nephelae.demo import set_up_demo

    settings = settings_from(home, host=host, port=port)
    _migrate(settings)
    with progress_bar(enabled=not json_output) as report:
        credentials = set_up_demo(settings, days=days, progress=report)
    if json_output:
        print_json(credentials)
    else:
        path = settings.home / "demo-credentials.json"
        console().print(f"Demo ready in {settings.home.resolve()}; credentials in {path}:")
        console().print_json(json.dumps(credentials))
    if not no_serve:
        serve_platform(settings)


@db_app.command("upgrade")
def db_upgrade(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Create or migrate the database to the newest schema (safe to run again)."""
    settings = settings_from(home)
    revision = _migrate(settings)
    if json_output:
        print_json({"revision": revision})
    else:
        console().print(f"Database at revision {revision}.")


@db_app.command("status")
def db_status(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Show the database backend and whether its schema is up to date."""
    settings = settings_from(home)
    engine = make_engine(settings.database)
    try:
        status = {
            "backend": backend_name(engine),
            "revision": current_revision(engine),
            "head": head_revision(),
        }
    finally:
        engine.dispose()
    if json_output:
        print_json(status)
    else:
        up = "up to date" if status["revision"] == status["head"] else "needs `nephelae db upgrade`"
        console().print(f"{status['backend']} database at revision {status['revision']} ({up}).")
