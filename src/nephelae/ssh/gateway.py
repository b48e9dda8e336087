"""The gateway's one narrow door: a command received over SSH, checked before anything runs.

Pure functions: the text of `SSH_ORIGINAL_COMMAND` in, the argument list of an allowed `nephelae` user command
out, or `PermissionDenied` saying what is allowed. No shell ever sees the text: it is split with `shlex` and
handed to the CLI in-process.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from nephelae.errors import PermissionDenied

# The user commands (those going through the HTTP API) and, for groups, their subcommands: a closed list, so that
# an operator command of a group (`datasets add`, `datasets index`: on the home's database) never gets through.
ALLOWED_SUBCOMMANDS: dict[str, frozenset[str] | None] = {
    "whoami": None,
    "datasets": frozenset({"list", "show"}),
    "search": None,
    "campaigns": frozenset({"submit", "list", "status", "wait", "logs", "cancel", "retry"}),
    "analysis": frozenset({"timeseries", "subset", "climatology", "map"}),
    "files": frozenset({"put", "get", "ls", "rm"}),
    "run": None,
}
ALLOWED_COMMANDS = tuple(ALLOWED_SUBCOMMANDS)
HELP = ("--help", "-h")
# Options that would point the command at another home, server or credential than the gateway's.
REFUSED_OPTIONS = ("--home",)
# Values of these options are not paths (`--time ../2020-01-31` is an open-ended interval).
NOT_PATHS = ("--time", "--datetime", "--bbox")
MAX_COMMAND_LENGTH = 4096
PROGRAM = "nephelae"


def _usage() -> str:
    return f"allowed: `{PROGRAM} COMMAND ...` with COMMAND one of {', '.join(ALLOWED_COMMANDS)}"


def parse_command(text: str | None) -> list[str]:
    """The arguments of the `nephelae` command in `text` (the leading `nephelae` optional), or a refusal."""
    if not text or not text.strip():
        raise PermissionDenied(f"this entry point gives no interactive shell; {_usage()}")
    if len(text) > MAX_COMMAND_LENGTH:
        raise PermissionDenied(f"command longer than {MAX_COMMAND_LENGTH} characters refused")
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise PermissionDenied("newlines and control characters are refused; send one command per connection")
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise PermissionDenied(f"cannot parse the command ({error}); {_usage()}") from None
    if words and words[0] == PROGRAM:
        words = words[1:]
    if not words or words[0] not in ALLOWED_COMMANDS:
        shown = words[0][:40] if words else ""
        raise PermissionDenied(f"command {shown!r} is not allowed here; {_usage()}")
    subcommands = ALLOWED_SUBCOMMANDS[words[0]]
    if subcommands is not None and len(words) > 1 and words[1] not in subcommands | set(HELP):
        allowed = ", ".join(sorted(subcommands))
        raise PermissionDenied(f"`{words[0]} {words[1][:40]}` is not allowed here; allowed: {words[0]} {allowed}")
    for word in words[1:]:
        if word.split("=", 1)[0] in REFUSED_OPTIONS:
            raise PermissionDenied(f"option {word.split('=', 1)[0]} is not allowed through the SSH gateway")
    return words


def path_arguments(words: list[str]) -> list[str]:
    """The arguments that could name files: every value except the command names and non-path option values."""
    found: list[str] = []
    skip_next = False
    for word in words[1:]:
        if skip_next:
            skip_next = False
            continue
        name, _, value = word.partition("=")
        if word.startswith("--"):
            if name in NOT_PATHS:
                skip_next = not value
            elif value:
                found.append(value)
            continue
        found.append(word)
    return found


def check_paths(words: list[str], workspace: Path) -> None:
    """Refuse an argument that, read as a path from `workspace`, leads out of it (absolute, `..`, symlink).

    The gateway's process can read what the service login can; the account may reach only its workspace.
    """
    root = Path(os.path.realpath(workspace))
    for argument in path_arguments(words):
        target = Path(os.path.realpath(root / argument))  # an absolute argument replaces the root
        if argument.startswith("~") or (target != root and root not in target.parents):
            raise PermissionDenied(
                f"argument {argument[:80]!r} leads outside your workspace; give paths relative to it"
            )
