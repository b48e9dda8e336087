"""sshd's AuthorizedKeysCommand: the `authorized_keys` line for a presented key, or nothing.

sshd asks with the login name, the key type and the key (`%u %t %k`: it gives no client address); the
line it gets back is all it knows: `restrict` (no forwarding, no agent, no X11, no pty unless given back), `from=`
the account's ranges, `expiry-time=` when its tokens expire, and in gateway mode the forced command. An unknown
key, a wrong login, an account that is not approved, has no range or whose tokens all expired: no line.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from sqlalchemy.orm import Session

from nephelae.accounts.keys import find_key
from nephelae.accounts.networks import parse_address
from nephelae.config import Settings
from nephelae.db.models import Account
from nephelae.ssh.credentials import access_expiry, mint_session_token

# The variables the login environment sets (sshd_config lets only these through PermitUserEnvironment).
LOGIN_ENVIRONMENT = ("NEPHELAE_URL", "NEPHELAE_TOKEN", "PATH")


def unix_login(settings: Settings, username: str) -> str:
    """The Unix user of an account in accounts mode."""
    return settings.ssh_user_prefix + username


def client_address(connection: str | None) -> str | None:
    """The client's address from `SSH_CONNECTION` ("client port server port"), set by sshd, if valid."""
    if not connection:
        return None
    try:
        return str(parse_address(connection.split()[0]))
    except (ValueError, IndexError):
        return None


def nephelae_command(*arguments: str) -> str:
    """A shell command line running this installation's `nephelae` (the forced command is run by a shell)."""
    return shlex.join([str(Path(sys.executable)), "-m", "nephelae", *arguments])


def key_line(session: Session, settings: Settings, login: str, key_type: str, key_data: str) -> str | None:
    """The line for sshd, or None when this key may not log in as `login`."""
    record = find_key(session, key_type, key_data)
    if record is None:
        return None
    account = record.account
    cidrs = [network.cidr for network in account.networks]
    if account.status != "approved" or not cidrs:
        return None
    expired, until = access_expiry(session, account)
    if expired:
        return None
    options = ["restrict", f'from="{",".join(cidrs)}"']
    if until is not None:
        options.append(f'expiry-time="{until:%Y%m%d%H%M}Z"')
    if settings.ssh_mode == "gateway":
        if login != settings.ssh_login:
            return None
        command = nephelae_command(
            "ssh", "shell", "--home", str(settings.home.resolve()), "--account", account.username
        )
        options.append(f"command={_quoted(command)}")
    else:
        if login != unix_login(settings, account.username):
            return None
        options.append("pty")
        options.extend(_login_environment(session, settings, account))
    return f"{','.join(options)} {record.key_type} {record.key_data}"


def _login_environment(session: Session, settings: Settings, account: Account) -> list[str]:
    """`environment=` options: the CLI on PATH, the platform's URL, and a token for this session.

    sshd gives the key lookup no client address, so the token is not bound to one: it works only from the entry
    point (see `accounts.access`), whose sshd checks the client against the account's ranges (`from=`) at login.
    """
    values = {
        "NEPHELAE_URL": settings.url,
        "NEPHELAE_TOKEN": mint_session_token(session, account, settings.ssh_token_minutes, login=True),
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
    }
    return [f"environment={_quoted(f'{name}={value}')}" for name, value in values.items()]


def _quoted(value: str) -> str:
    """An authorized_keys option value: in double quotes, with `"` escaped (sshd undoes only `\\"`)."""
    return '"' + value.replace('"', '\\"') + '"'
