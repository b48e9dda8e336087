"""The gateway's one narrow door: a command received over SSH, checked before anything runs.

Pure functions: the text of `SSH_ORIGINAL_COMMAND` in, the argument list of an allowed `nephelae` user command
out, or `PermissionDenied` saying what is allowed. No shell ever sees the text: it is split with `shlex` and
handed to the CLI in-process.
"""

from __future__ import annotations

import os
import shlex
import stat
import unicodedata
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
MAX_SHORT_OPTIONS = 64  # letters of a `-abc` cluster, each a possible start of a glued value to check
PROGRAM = "nephelae"


def _usage() -> str:
    return f"allowed: `{PROGRAM} COMMAND ...` with COMMAND one of {', '.join(ALLOWED_COMMANDS)}"


def _is_control(char: str) -> bool:
    """C0 and C1 controls, Unicode line and paragraph separators, and format characters (bidi overrides,
    zero-width ones): they would split or disguise the command in the audit log and on an operator's terminal."""
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def parse_command(text: str | None) -> list[str]:
    """The arguments of the `nephelae` command in `text` (the leading `nephelae` optional), or a refusal."""
    if not text or not text.strip():
        raise PermissionDenied(f"this entry point gives no interactive shell; {_usage()}")
    if len(text) > MAX_COMMAND_LENGTH:
        raise PermissionDenied(f"command longer than {MAX_COMMAND_LENGTH} characters refused")
    if any(_is_control(char) for char in text):
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


def uses_local_files(words: list[str]) -> bool:
    """Whether the command reads or writes files of the workspace by path itself (not through the API's door)."""
    return words[0] == "analysis" or words[:2] in (["files", "put"], ["files", "get"], ["campaigns", "submit"])


def path_arguments(words: list[str]) -> list[str]:
    """The arguments that could name files: every value except the command names and non-path option values.

    Click does not read the command the way a simple scan would: after `--` every word is an argument, even
    `--time`; and an option taking a value swallows the next word whatever it is (`-v --time -o/etc/x` gives
    `-o/etc/x` its meaning back). So every word is checked, whole and in its possible parts; after `--time` its
    open ends (`../`, `/..`) are taken off first.
    """
    found: list[str] = []
    words = words[1:]
    for index, word in enumerate(words):
        if word == "--":
            found.extend(words[index + 1 :])
            break
        if index and words[index - 1] in NOT_PATHS:
            word = _open_ends_removed(word)
        found.append(word)  # even `--x/../../etc/y`, which an option taking a value would swallow as one
        if word.startswith("--"):
            name, joined, value = word.partition("=")
            if joined and name not in NOT_PATHS:
                found.append(value)
        elif word.startswith("-"):
            found.extend(_glued_values(word))
    return found


def _open_ends_removed(value: str) -> str:
    """A time interval without its open ends: `../2020-01-31` is no path out of the workspace."""
    value = value.removeprefix("../").removesuffix("/..")
    return "" if value == ".." else value


def _glued_values(word: str) -> list[str]:
    """What could be an option's value glued to a cluster of short options (`-o/etc/x`, `-ro/etc/x`), which click
    accepts: every tail that follows one or more option letters."""
    letters = 1
    while letters < len(word) and word[letters].isascii() and word[letters].isalnum():
        letters += 1
    if letters > MAX_SHORT_OPTIONS:
        raise PermissionDenied(f"option {word[:40]!r}... is too long; separate an option from its value with a space")
    return [word[index:] for index in range(2, min(letters + 1, len(word)))]


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
        try:
            mode = target.stat().st_mode
        except OSError:
            continue  # not there (yet): an output, or a word that is not a path
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO would hang the command, a device feed it forever
            raise PermissionDenied(
                f"argument {argument[:80]!r} is not a regular file or directory (a FIFO, socket or device)"
            )
