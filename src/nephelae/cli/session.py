"""`nephelae whoami`: who the platform takes you for, through the HTTP API (the same from a laptop and over SSH)."""

from __future__ import annotations

from nephelae.cli.datasets import user_client
from nephelae.cli.options import HomeOption
from nephelae.cli.output import JsonOption, console, print_json


def whoami(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Show your account as the platform sees it: role, status, projects, allowed ranges, your address."""
    with user_client(home) as client:
        me = client.me()
    if json_output:
        print_json(me)
        return
    lines = [
        f"{me['username']} ({me['full_name']}, {me['affiliation']})",
        f"role: {me['role']}, status: {me['status']}",
        f"projects: {', '.join(me['projects']) or 'none'}",
        f"allowed ranges: {', '.join(me['allowed_networks']) or 'none'}",
        f"seen from: {me['address']}",
    ]
    console().print("\n".join(lines), markup=False)
