"""`nephelae admin`: operator commands acting on the home's database directly, each one audited.

They need no server, only the home (`--home` or NEPHELAE_HOME) and a migrated database (`nephelae db upgrade`). The
operator running them is recorded as the actor `operator:<login name>`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from nephelae.accounts import audit as audit_log
from nephelae.cli import admin_accounts, admin_credentials, admin_firewall, admin_projects
from nephelae.cli.admin_home import iso, open_session, print_table, timestamp
from nephelae.cli.options import HomeOption, settings_from
from nephelae.cli.output import JsonOption, print_json
from nephelae.db.models import AuditEvent

app = typer.Typer(
    help="Operator commands: accounts, allowed ranges, tokens, SSH keys, projects, audit log.", no_args_is_help=True
)
app.add_typer(admin_accounts.accounts_app, name="accounts")
app.command("allow-ip")(admin_accounts.allow_ip)
app.command("deny-ip")(admin_accounts.deny_ip)
app.add_typer(admin_credentials.tokens_app, name="tokens")
app.add_typer(admin_credentials.keys_app, name="keys")
app.add_typer(admin_projects.projects_app, name="projects")
app.command("firewall")(admin_firewall.firewall)


def event_summary(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "subject": event.subject,
        "address": event.address,
        "detail": event.detail,
    }


@app.command("audit")
def audit(
    user: Annotated[
        str | None, typer.Option("--user", metavar="U", help="Only events by or about U: an account, or operator:NAME.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", metavar="K", help="Only events of kind K, e.g. account.approve.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1, max=10_000, help="At most N events.")] = 50,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the audit log, newest first: registrations, decisions, credentials, refused access."""
    with open_session(settings_from(home)) as session:
        events = audit_log.list_events(session, involving=user, kind=kind, limit=limit)
    if json_output:
        print_json([event_summary(event) for event in events])
        return
    rows = [
        (
            timestamp(event.at),
            event.kind,
            event.actor,
            event.subject,
            event.address,
            " ".join(f"{key}={value}" for key, value in event.detail.items()),
        )
        for event in events
    ]
    print_table(
        "Audit log", ("at (UTC)", "kind", "actor", "subject", "address", "detail"), rows, empty="No matching events."
    )
