"""The key lookup as sshd runs it: light to start (no web, no CLI), and closed on any failure.

sshd runs the AuthorizedKeysCommand for every key a client offers, so it must start fast; the wrapper installed
by `nephelae ssh sshd-config` runs `python -m nephelae.ssh authorized-keys USER KEY_TYPE KEY`,
the same as `nephelae ssh authorized-keys` without loading the whole command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from nephelae.config import load_settings
from nephelae.db import make_engine, session_factory
from nephelae.ssh.authorized_keys import key_line

USAGE = "usage: python -m nephelae.ssh authorized-keys USER KEY_TYPE KEY [--home DIR]"


def lookup(login: str, key_type: str, key: str, home: Path | None, out: TextIO = sys.stdout) -> int:
    """Print the line for this key (exit 0), or nothing: exit 0 for "no such key", 1 when anything failed."""
    try:
        settings = load_settings(home)
        database = settings.database
        if database.startswith("sqlite:///") and not Path(database.removeprefix("sqlite:///")).exists():
            raise FileNotFoundError(f"no database at {database}")  # never create an empty one here
        engine = make_engine(database)
        try:
            with session_factory(engine)() as session:
                line = key_line(session, settings, login, key_type, key)
        finally:
            engine.dispose()
    except Exception as error:  # whatever fails (database down, bad settings), no one gets in
        sys.stderr.write(f"nephelae: no key served ({type(error).__name__}: {error})\n")
        return 1
    if line is not None:
        out.write(line + "\n")
    return 0


def main(argv: list[str]) -> int:
    """`authorized-keys USER KEY_TYPE KEY [--home DIR]`."""
    options: dict[str, str] = {}
    positional: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--home":
            options[word] = next(words, "")
        else:
            positional.append(word)
    if len(positional) != 4 or positional[0] != "authorized-keys":
        sys.stderr.write(USAGE + "\n")
        return 2
    home = Path(options["--home"]) if options.get("--home") else None
    _, login, key_type, key = positional
    return lookup(login, key_type, key, home)
