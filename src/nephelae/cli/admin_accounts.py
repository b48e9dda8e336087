"""`nephelae admin accounts ...`, `allow-ip`, `deny-ip`: review registrations, decide, and say where from."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from nephelae.accounts import networks, registry
from nephelae.accounts.projects import projects_of
from nephelae.cli.admin_home import iso, open_session, operator_actor, print_table, say, timestamp
from nephelae.cli.options import HomeOption, settings_from
from nephelae.cli.output import JsonOption, print_json
from nephelae.db.models import Account
from nephelae.ssh.unix_users import follow_account

UserArgument = Annotated[str, typer.Argument(metavar="USER", help="Username of the account.", show_default=False)]
CidrArgument = Annotated[
    str, typer.Argument(metavar="CIDR", help="IPv4 or IPv6 range, e.g. 10.2.3.0/24 or 2001:db8::/48.")
]
StatusOption = Annotated[
    str | None,
    typer.Option("--status", metavar="S", help=f"Only accounts in this status: {', '.join(registry.STATUSES)}."),
]
AllowOption = Annotated[
    list[str] | None,
    typer.Option("--allow", metavar="CIDR", help="A range the account may connect from; repeat for several."),
]

accounts_app = typer.Typer(help="Accounts: review registrations, decide on them, set roles.", no_args_is_help=True)

_COLUMNS = ("username", "status", "role", "email", "affiliation", "requested project", "allowed ranges", "created")
_DONE = {"approve": "Approved", "reject": "Rejected", "suspend": "Suspended", "reinstate": "Reinstated"}


def account_summary(account: Account) -> dict[str, Any]:
    """An account as scripts see it (`--json`)."""
    return {
        "username": account.username,
        "status": account.status,
        "role": account.role,
        "email": account.email,
        "full_name": account.full_name,
        "affiliation": account.affiliation,
        "requested_project": account.requested_project,
        "allowed_networks": [network.cidr for network in account.networks],
        "created_at": iso(account.created_at),
        "decided_at": iso(account.decided_at),
        "decided_by": account.decided_by,
    }


@accounts_app.command("list")
def list_accounts(status: StatusOption = None, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """List accounts, oldest first: status, role, contact, requested project, allowed ranges."""
    with open_session(settings_from(home)) as session:
        accounts = registry.list_accounts(session, status)
        summaries = [account_summary(account) for account in accounts]
    if json_output:
        print_json(summaries)
        return
    rows = [
        (
            account.username,
            account.status,
            account.role,
            account.email,
            account.affiliation,
            account.requested_project,
            ", ".join(summary["allowed_networks"]),
            f"{account.created_at:%Y-%m-%d}",
        )
        for account, summary in zip(accounts, summaries, strict=True)
    ]
    print_table("Accounts", _COLUMNS, rows, empty="No accounts" + (f" are {status}." if status else "."))


@accounts_app.command("show")
def show_account(username: UserArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Show one account in full: the registration, the decision, allowed ranges and projects."""
    with open_session(settings_from(home)) as session:
        account = registry.get_account(session, username)
        details = {
            **account_summary(account),
            "justification": account.justification,
            "projects": projects_of(session, account),
        }
    if json_output:
        print_json(details)
        return
    decided = f"{details['decided_by']} on {timestamp(account.decided_at)}" if account.decided_at else ""
    rows = [
        ("username", account.username),
        ("status", f"{account.status}" + (f" (by {decided})" if decided else "")),
        ("role", account.role),
        ("name", account.full_name),
        ("email", account.email),
        ("affiliation", account.affiliation),
        ("requested project", account.requested_project),
        ("justification", account.justification),
        ("allowed ranges", ", ".join(details["allowed_networks"]) or "none"),
        ("projects", ", ".join(details["projects"]) or "none"),
        ("created", timestamp(account.created_at)),
    ]
    print_table(f"Account {username}", ("field", "value"), rows)


@accounts_app.command("approve")
def approve(
    username: UserArgument, allow: AllowOption = None, home: HomeOption = None, json_output: JsonOption = False
) -> None:
    """Approve a pending (or earlier rejected) account, optionally allowing the ranges it connects from."""
    settings = settings_from(home)
    with open_session(settings) as session:
        account = networks.approve(session, username, allow or [], actor=operator_actor())
        summary = account_summary(account)
        follow_account(session, settings, username, actor=operator_actor())  # its Unix user, in accounts mode
    if json_output:
        print_json(summary)
    elif summary["allowed_networks"]:
        say(f"Approved {username}; allowed ranges: {', '.join(summary['allowed_networks'])}.")
    else:
        say(
            f"Approved {username}. They cannot connect until a range is allowed: "
            f"`nephelae admin allow-ip {username} CIDR`."
        )


def _decide(home: HomeOption, username: str, decision: str, json_output: bool) -> None:
    settings = settings_from(home)
    with open_session(settings) as session:
        summary = account_summary(registry.decide(session, username, decision, actor=operator_actor()))
        follow_account(session, settings, username, actor=operator_actor())  # its Unix user, in accounts mode
    if json_output:
        print_json(summary)
    else:
        say(f"{_DONE[decision]} {username}; the account is now {summary['status']}.")


@accounts_app.command("reject")
def reject(username: UserArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Reject a pending registration (it can still be approved later)."""
    _decide(home, username, "reject", json_output)


@accounts_app.command("suspend")
def suspend(username: UserArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Suspend an approved account: its tokens and keys are refused until it is reinstated."""
    _decide(home, username, "suspend", json_output)


@accounts_app.command("reinstate")
def reinstate(username: UserArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Reinstate a suspended account: its tokens and keys work again."""
    _decide(home, username, "reinstate", json_output)


@accounts_app.command("role")
def set_role(
    username: UserArgument,
    role: Annotated[str, typer.Argument(metavar="ROLE", help=f"One of: {', '.join(registry.ROLES)}.")],
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make an account an administrator (`admin`) or a plain `user`."""
    with open_session(settings_from(home)) as session:
        summary = account_summary(registry.set_role(session, username, role, actor=operator_actor()))
    if json_output:
        print_json(summary)
    else:
        say(f"{username} now has the role {summary['role']}.")


def _networks_of(session: Session, username: str) -> list[str]:
    return [network.cidr for network in registry.get_account(session, username).networks]


def allow_ip(
    username: UserArgument, cidr: CidrArgument, home: HomeOption = None, json_output: JsonOption = False
) -> None:
    """Let an account connect from a range of addresses (a bare address means just that one)."""
    with open_session(settings_from(home)) as session:
        allowed = networks.allow_network(session, username, cidr, actor=operator_actor()).cidr
        current = _networks_of(session, username)
    if json_output:
        print_json({"username": username, "cidr": allowed, "allowed_networks": current})
    else:
        say(f"{username} may now connect from {allowed} (allowed ranges: {', '.join(current)}).")


def deny_ip(
    username: UserArgument, cidr: CidrArgument, home: HomeOption = None, json_output: JsonOption = False
) -> None:
    """Remove a range an account was allowed to connect from."""
    with open_session(settings_from(home)) as session:
        networks.remove_network(session, username, cidr, actor=operator_actor())
        current = _networks_of(session, username)
    removed = str(networks.parse_network(cidr))
    if json_output:
        print_json({"username": username, "cidr": removed, "allowed_networks": current})
    else:
        say(f"{username} may no longer connect from {removed} (allowed ranges: {', '.join(current) or 'none'}).")
