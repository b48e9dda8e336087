"""System tools the tests need (sshd, nft...): installed with apt-get when missing, a failure (never a skip) if not."""

from __future__ import annotations

import shutil
import subprocess

import pytest

_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def ensure_tool(executable: str, debian_package: str) -> str:
    """The path of `executable`, installing `debian_package` first if it is missing; fails the test otherwise."""
    found = _which(executable)
    if found is not None:
        return found
    install = ["apt-get", "install", "-y", "--no-install-recommends", debian_package]
    for command in (["apt-get", "update"], install):
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            _fail(executable, command, install, str(error))
        if result.returncode != 0:
            _fail(executable, command, install, result.stderr.strip()[-500:])
    found = _which(executable)
    if found is None:
        pytest.fail(f"{debian_package} was installed but `{executable}` is not on PATH", pytrace=False)
    return found


def _which(executable: str) -> str | None:
    return shutil.which(executable) or shutil.which(executable, path=_SBIN)


def _fail(executable: str, command: list[str], install: list[str], reason: str) -> None:
    pytest.fail(
        f"{executable} is missing and `{' '.join(command)}` failed ({reason}); install it by hand "
        f"(as root: apt-get update && {' '.join(install)}) and run the tests again",
        pytrace=False,
    )
