"""`nephelae ssh ...`: the pieces sshd calls (authorized-keys, the gateway's shell) and the operator's set-up.

The gateway runs an allowed user command in this process against the API application, with the SSH client's
address as the peer (from SSH_CONNECTION, set by sshd: the user cannot change it), so the API's checks apply to
it exactly as over HTTPS; the command's token is minted for it and deleted when it ends.
"""

from __future__ import annotations

import importlib
import os
import pwd
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from nephelae.accounts import audit
from nephelae.accounts.access import check_account_access
from nephelae.accounts.registry import get_account
from nephelae.cli.admin_home import open_session, operator_actor, print_table
from nephelae.cli.options import HomeOption, settings_from
from nephelae.cli.output import JsonOption, print_json
from nephelae.config import Settings
from nephelae.errors import ConfigurationError, PermissionDenied
from nephelae.ssh.authorized_keys import client_address
from nephelae.ssh.credentials import drop_session_token, mint_session_token
from nephelae.ssh.gateway import check_paths, parse_command, uses_local_files
from nephelae.ssh.inprocess import API_TRANSPORT, InProcessTransport
from nephelae.ssh.lookup import lookup
from nephelae.ssh.sshd import WRAPPER_DIR, ensure_host_key, install_wrapper, sshd_config
from nephelae.ssh.unix_users import Change, failures, record_changes, sync_accounts
from nephelae.workspaces import workspace_lock

ssh_app = typer.Typer(help="The SSH entry point: sshd's key lookup, the gateway shell, sshd_config, Unix users.")
GATEWAY_URL = "http://nephelae-gateway"  # never contacted: the transport answers in-process


@ssh_app.command("authorized-keys")
def authorized_keys(
    login: Annotated[str, typer.Argument(metavar="USER", help="The login name (sshd's %u).")],
    key_type: Annotated[str, typer.Argument(metavar="KEY_TYPE", help="The key's type (sshd's %t).")],
    key: Annotated[str, typer.Argument(metavar="KEY", help="The base64 key (sshd's %k).")],
    home: HomeOption = None,
) -> None:
    """For sshd's AuthorizedKeysCommand: print the key's authorized_keys line, or nothing (and fail closed)."""
    status = lookup(login, key_type, key, home)
    if status:
        raise typer.Exit(status)


@ssh_app.command("shell")
def shell(
    account: Annotated[str, typer.Option("--account", metavar="NAME", help="The account the key belongs to.")],
    home: HomeOption = None,
) -> None:
    """The gateway's forced command: run SSH_ORIGINAL_COMMAND if it is an allowed `nephelae` user command."""
    settings = settings_from(home)
    client = ssh_client(os.environ.get("SSH_CONNECTION"))
    if client is None:
        raise PermissionDenied("`nephelae ssh shell` runs only as the forced command of an SSH session")
    text = os.environ.get("SSH_ORIGINAL_COMMAND")
    workspace = settings.workspaces_dir.resolve() / account
    with ExitStack() as held:
        with open_session(settings) as session:
            record = get_account(session, account)
            try:
                words = parse_command(text)
                workspace.mkdir(parents=True, exist_ok=True)
                if uses_local_files(words):  # no script may plant links between the check and the CLI's open
                    held.enter_context(workspace_lock(settings.workspaces_dir.resolve(), account, shared=False))
                check_paths(words, workspace)
            except PermissionDenied as error:
                _audit(session, "ssh.refused", account, client[0], text, reason=error.detail)
                raise
            check_account_access(session, record, client[0])
            _audit(session, "ssh.command", account, client[0], text)
            token = mint_session_token(session, record, settings.ssh_token_minutes)
        try:
            os.chdir(workspace)
            status = run_in_process(settings, words, token, client)
        finally:
            with open_session(settings) as session:
                drop_session_token(session, token)
    raise typer.Exit(status)


def ssh_client(connection: str | None) -> tuple[str, int] | None:
    """(address, port) of the SSH client from SSH_CONNECTION ("client port server port"), as sshd sets it."""
    address = client_address(connection)
    port = (connection or "").split()[1:2]
    return (address, int(port[0])) if address is not None and port and port[0].isdigit() else None


def _audit(session: Session, kind: str, account: str, client: str, text: str | None, **detail: str) -> None:
    audit.record(session, kind, actor=account, address=client, command=(text or "")[:300], **detail)
    session.commit()


def run_in_process(settings: Settings, words: list[str], token: str, client: tuple[str, int]) -> int:
    """Run the CLI command `words` here, its API calls served in-process as coming from `client`; its exit status."""
    # Looked up by name: nephelae.cli.main imports this module.
    main: Callable[[list[str]], None] = importlib.import_module("nephelae.cli.main").main
    from nephelae.api import create_app  # here: the API is heavy, and only gateway commands need it

    api = create_app(settings.model_copy(update={"run_engine": False, "trusted_proxies": []}))
    transport = InProcessTransport(api, client)
    os.environ.update({"NEPHELAE_URL": GATEWAY_URL, "NEPHELAE_TOKEN": token})
    reset = API_TRANSPORT.set(transport)
    try:
        main(words)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    finally:
        API_TRANSPORT.reset(reset)
        transport.close()
        api.state.engine.dispose()
    return 0


@ssh_app.command("sshd-config")
def sshd_config_command(
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Port [default: ssh_port]")] = None,
    listen: Annotated[
        list[str] | None, typer.Option("--listen", metavar="ADDR", help="Address to listen on; repeatable.")
    ] = None,
    keys_user: Annotated[
        str | None,
        typer.Option("--keys-user", metavar="USER", help="Runs the key lookup [default: the home's owner]."),
    ] = None,
    wrapper_dir: Annotated[
        Path, typer.Option("--wrapper-dir", metavar="DIR", help="Root-owned directory for the key lookup wrapper.")
    ] = WRAPPER_DIR,
    home: HomeOption = None,
) -> None:
    """Print a complete sshd_config for this home (host key made, key lookup wrapper installed as root)."""
    settings = settings_from(home)
    owner = keys_user or pwd.getpwuid(settings.home.stat().st_uid).pw_name
    text = sshd_config(
        settings,
        port=port or settings.ssh_port,
        wrapper=install_wrapper(settings, wrapper_dir),
        keys_user=owner,
        host_key=ensure_host_key(settings),
        listen=listen or [],
    )
    sys.stdout.write(text)


@ssh_app.command("sync-accounts")
def sync_accounts_command(
    user: Annotated[str | None, typer.Option("--user", metavar="USER", help="Only this account.")] = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Accounts mode: make, enable or disable the Unix user of each account to match its status (as root)."""
    settings = settings_from(home)
    if settings.ssh_mode != "accounts":
        raise ConfigurationError(
            'ssh_mode is `gateway`: there are no per-account Unix users to sync; set ssh_mode = "accounts" first'
        )
    with open_session(settings) as session:
        changes = sync_accounts(session, settings, only=user)
        record_changes(session, changes, operator_actor())
    if json_output:
        print_json([{"login": c.login, "account": c.account, "action": c.action} for c in changes])
    else:
        _print_changes(changes)
    problem = failures(changes)
    if problem is not None:
        raise ConfigurationError(f"some Unix users could not be synced: {problem}")


def _print_changes(changes: list[Change]) -> None:
    rows = [(c.login, c.account, c.action) for c in changes]
    print_table("Unix users", ("login", "account", "action"), rows, empty="No accounts.")
