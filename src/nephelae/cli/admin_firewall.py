"""`nephelae admin firewall --format nft`: the allowed ranges of approved accounts as an nftables ruleset."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer
from sqlalchemy import select

from nephelae.cli.admin_home import open_session
from nephelae.cli.options import HomeOption, settings_from
from nephelae.db.models import Account, AllowedNetwork
from nephelae.ssh.firewall import nft_ruleset


def firewall(
    output_format: Annotated[
        Literal["nft"], typer.Option("--format", help="Ruleset format; nftables (`nft -f FILE`).")
    ] = "nft",
    port: Annotated[
        list[int] | None,
        typer.Option("--port", min=1, max=65535, help="A TCP port to guard; repeatable [default: ssh_port, port]."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Print the firewall rules: only the allowed ranges of approved accounts reach SSH and HTTP."""
    settings = settings_from(home)
    with open_session(settings) as session:
        cidrs = session.scalars(
            select(AllowedNetwork.cidr).join(Account).where(Account.status == "approved").distinct()
        ).all()
    ports = port or [settings.ssh_port, settings.port]
    del output_format  # one format so far; the option names it so that scripts keep working when more come
    sys.stdout.write(nft_ruleset(cidrs, ports))
