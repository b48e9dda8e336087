"""A real OpenSSH server on loopback for one Nephelae home, configured by `nephelae ssh sshd-config`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nephelae.config import Settings
from nephelae.ssh.sshd import wrapper_path
from tests.support.system import ensure_tool

SSHD = "/usr/sbin/sshd"


@dataclass
class RunningSshd:
    port: int
    config: str
    process: subprocess.Popen[bytes]
    log: Path

    def ssh(
        self, login: str, key: Path, *command: str, source: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """`ssh` to the server as `login` with `key` (from `source`), running `command`."""
        argv = [
            *("ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"),
            *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"),
            *("-p", str(self.port), *(("-b", source) if source else ())),
            f"{login}@127.0.0.1",
            *command,
        ]
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def ensure_openssh() -> None:
    ensure_tool("sshd", "openssh-server")
    ensure_tool("ssh", "openssh-client")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def sshd_config_text(home: Path, port: int, keys_user: str) -> str:
    """What `nephelae ssh sshd-config` prints for `home` (run as root: it installs the key lookup wrapper)."""
    argv = [sys.executable, "-m", "nephelae", "ssh", "sshd-config", "--home", str(home), "--port", str(port)]
    argv += ["--listen", "127.0.0.1", "--keys-user", keys_user]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    return result.stdout


@contextmanager
def running_sshd(settings: Settings, keys_user: str, workdir: Path) -> Iterator[RunningSshd]:
    """sshd with the config `nephelae ssh sshd-config` prints, until the block ends; the wrapper removed after."""
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(sshd_config_text(settings.home, port, keys_user))
    checked = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    log = workdir / "sshd.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, process, log)
        yield RunningSshd(port, config.read_text(), process, log)
    finally:
        process.terminate()
        process.wait(timeout=10)
        wrapper_path(settings).unlink(missing_ok=True)


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd stopped: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sshd did not start listening")


@contextmanager
def unix_user(prefix: str, home: Path, shell: str = "/bin/sh") -> Iterator[str]:
    """A throw-away system user named `prefix` + a random suffix; deleted after."""
    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    useradd = ["useradd", "--system", "--no-create-home", "--home-dir", str(home), "--shell", shell, name]
    subprocess.run(useradd, check=True, capture_output=True)
    # No password, yet not locked ("!"): sshd refuses locked users even with a key (UsePAM no).
    subprocess.run(["usermod", "--password", "*", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def give_to(path: Path, user: str) -> None:
    """Hand a directory tree to `user` (the service login must own the home it runs on)."""
    shutil.chown(path, user, user if _has_group(user) else None)
    for root, directories, files in os.walk(path):
        for name in [*directories, *files]:
            shutil.chown(Path(root) / name, user)


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
