"""`nephelae admin tokens ...` and `nephelae admin keys ...`: the credentials an account presents."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nephelae.accounts import keys, tokens
from nephelae.cli.admin_accounts import UserArgument
from nephelae.cli.admin_home import iso, note, open_session, operator_actor, print_table, say, timestamp
from nephelae.cli.options import HomeOption, settings_from
from nephelae.cli.output import JsonOption, print_json
from nephelae.config import Settings
from nephelae.db.models import Account, ApiToken, SshKey
from nephelae.errors import InvalidInput

# A public key line is well under 1 KiB (RSA 16384 bits: ~2.8 KiB); more is not a key file.
_MAX_KEY_FILE_BYTES = 64 * 1024

tokens_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)
keys_app = typer.Typer(help="SSH public keys identifying accounts to the SSH entry point.", no_args_is_help=True)


def token_summary(record: ApiToken) -> dict[str, Any]:
    """A token as scripts see it: never the token itself, which is not stored."""
    return {
        "name": record.name,
        "prefix": record.display_prefix,
        "state": _token_state(record),
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "revoked_at": iso(record.revoked_at),
        "last_used_at": iso(record.last_used_at),
        "last_used_address": record.last_used_address,
    }


def _token_state(record: ApiToken) -> str:
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is not None and record.expires_at <= dt.datetime.now(dt.UTC):
        return "expired"
    return "active"


def _expiry_days(settings: Settings, expires: int | None, no_expiry: bool) -> int | None:
    if no_expiry:
        if expires is not None:
            raise InvalidInput("give either --expires DAYS or --no-expiry, not both")
        return None
    if expires is None:
        return settings.token_expiry_days
    if not 1 <= expires <= tokens.MAX_EXPIRY_DAYS:
        raise InvalidInput(
            f"--expires must be 1 to {tokens.MAX_EXPIRY_DAYS} days; use --no-expiry for a token that never expires"
        )
    return expires


def _unusable_because(account: Account) -> str | None:
    """Why a new credential of `account` would be refused right now, if it would."""
    if account.status != "approved":
        return f"{account.username} is {account.status}; the token is refused until the account is approved"
    if not account.networks:
        return f"{account.username} has no allowed ranges yet; `nephelae admin allow-ip {account.username} CIDR`"
    return None


@tokens_app.command("create")
def create_token(
    username: UserArgument,
    name: Annotated[str, typer.Option("--name", metavar="N", help="Token name, unique per account.")] = "default",
    expires: Annotated[
        int | None,
        typer.Option(
            "--expires", metavar="DAYS", help="Days until it expires (default: the token_expiry_days setting)."
        ),
    ] = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Make a token that never expires.")] = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create an API token and print it, alone on standard output, this once: only its hash is kept."""
    settings = settings_from(home)
    days = _expiry_days(settings, expires, no_expiry)
    with open_session(settings) as session:
        token, record = tokens.create_token(session, username, name=name, expires_days=days, actor=operator_actor())
        warning = _unusable_because(record.account)
    if warning:
        note(f"warning: {warning}")
    if json_output:
        print_json({"username": username, "name": record.name, "token": token, "expires_at": iso(record.expires_at)})
        return
    until = f"expires {timestamp(record.expires_at)} UTC" if record.expires_at else "never expires"
    note(f"Token {record.name!r} for {username} ({until}). Copy it now: it will not be shown again.")
    sys.stdout.write(f"{token}\n")


@tokens_app.command("list")
def list_tokens(username: UserArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """List an account's tokens: name, first characters, state, expiry, last use. Never the token itself."""
    with open_session(settings_from(home)) as session:
        records = tokens.list_tokens(session, username)
    if json_output:
        print_json([token_summary(record) for record in records])
        return
    rows = [
        (
            record.name,
            f"{record.display_prefix}...",
            _token_state(record),
            timestamp(record.created_at),
            timestamp(record.expires_at) or "never",
            timestamp(record.last_used_at),
            record.last_used_address,
        )
        for record in records
    ]
    columns = ("name", "prefix", "state", "created", "expires", "last used", "from")
    print_table(f"Tokens of {username}", columns, rows, empty=f"{username} has no tokens.")


@tokens_app.command("revoke")
def revoke_token(
    username: UserArgument,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the token, as `tokens list` shows it.")],
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke a token: it is refused from now on (revoking it again does nothing)."""
    with open_session(settings_from(home)) as session:
        record = tokens.revoke_token(session, username, name, actor=operator_actor())
    if json_output:
        print_json(token_summary(record))
    else:
        say(f"Revoked token {name!r} of {username}; it is refused from now on.")


def read_public_key(path: Path) -> str:
    """The one key line of a public key file, refusing private keys and anything else that is not one."""
    try:
        with path.open("rb") as handle:
            text = handle.read(_MAX_KEY_FILE_BYTES).decode("utf-8")
    except OSError as error:
        raise InvalidInput(
            f"cannot read {path}: {error.strerror or error}; give a file such as id_ed25519.pub"
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not a text file; give the public key file, such as id_ed25519.pub") from None
    if text.lstrip().startswith("-----BEGIN"):
        what = "a private key, which must never leave its owner" if "PRIVATE KEY" in text else "a PEM file"
        raise InvalidInput(f"{path} is {what}; give the .pub file instead (one line: 'ssh-ed25519 AAAA... comment')")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) != 1:
        raise InvalidInput(f"{path} holds {len(lines)} lines; give a file with exactly one public key, such as a .pub")
    return lines[0]


def key_summary(record: SshKey) -> dict[str, Any]:
    return {
        "fingerprint": record.fingerprint,
        "key_type": record.key_type,
        "comment": record.comment,
        "created_at": iso(record.created_at),
    }


@keys_app.command("add")
def add_key(
    username: UserArgument,
    pubkey_file: Annotated[
        Path, typer.Argument(metavar="PUBKEY_FILE", help="The public key file, e.g. id_ed25519.pub.")
    ],
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register an SSH public key (ed25519, ECDSA or RSA of 2048 bits or more) for an account."""
    line = read_public_key(pubkey_file)
    with open_session(settings_from(home)) as session:
        summary = {"username": username, **key_summary(keys.add_key(session, username, line, actor=operator_actor()))}
    if json_output:
        print_json(summary)
    else:
        comment = f" ({summary['comment']})" if summary["comment"] else ""
        say(f"Added {summary['key_type']} key {summary['fingerprint']}{comment} to {username}.")


@keys_app.command("list")
def list_keys(username: UserArgument, home: HomeOption = None, json_output: JsonOption = False) -> None:
    """List an account's SSH keys with their SHA256 fingerprints, as `ssh-keygen -l` prints them."""
    with open_session(settings_from(home)) as session:
        records = keys.list_keys(session, username)
    if json_output:
        print_json([key_summary(record) for record in records])
        return
    rows = [(key.fingerprint, key.key_type, key.comment, timestamp(key.created_at)) for key in records]
    columns = ("fingerprint", "type", "comment", "added")
    print_table(f"SSH keys of {username}", columns, rows, empty=f"{username} has no SSH keys.")


@keys_app.command("remove")
def remove_key(
    username: UserArgument,
    fingerprint: Annotated[str, typer.Argument(metavar="FINGERPRINT", help="SHA256:... as `keys list` shows it.")],
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove an SSH key from an account, by fingerprint."""
    wanted = fingerprint if fingerprint.startswith("SHA256:") else f"SHA256:{fingerprint}"
    with open_session(settings_from(home)) as session:
        keys.remove_key(session, username, wanted, actor=operator_actor())
    if json_output:
        print_json({"username": username, "fingerprint": wanted, "removed": True})
    else:
        say(f"Removed key {wanted} from {username}.")
