"""A complete sshd_config for this home, its host key, and the root-owned AuthorizedKeysCommand wrapper.

sshd runs the AuthorizedKeysCommand only if the program and every directory above it are owned by root and not
writable by group or others; a home under /tmp, or a virtualenv owned by someone else, never qualifies. So a
small wrapper is installed in `/usr/local/lib/nephelae/` (root-owned), which calls this installation's
`nephelae ssh authorized-keys` with NEPHELAE_HOME set; it holds no secret (the database URL stays in the home).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from nephelae.config import Settings
from nephelae.errors import ConfigurationError
from nephelae.ssh.authorized_keys import LOGIN_ENVIRONMENT

WRAPPER_DIR = Path("/usr/local/lib/nephelae")
HOST_KEY = "ssh_host_ed25519_key"


def ssh_dir(settings: Settings) -> Path:
    return settings.home.resolve() / "ssh"


def wrapper_path(settings: Settings, directory: Path = WRAPPER_DIR) -> Path:
    """Where this home's AuthorizedKeysCommand wrapper lives: one per home, named by a hash of its path."""
    digest = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:12]
    return directory / f"authorized-keys-{digest}"


def wrapper_text(settings: Settings) -> str:
    home = shlex.quote(str(settings.home.resolve()))
    python = shlex.quote(str(Path(sys.executable)))
    return (
        "#!/bin/sh\n"
        "# sshd's AuthorizedKeysCommand for the Nephelae home below; written by `nephelae ssh sshd-config`.\n"
        f"NEPHELAE_HOME={home}\nexport NEPHELAE_HOME\n"
        f'exec {python} -m nephelae.ssh authorized-keys "$@"\n'
    )


def install_wrapper(settings: Settings, directory: Path = WRAPPER_DIR) -> Path:
    """Write the wrapper (as root), then check that sshd will accept it; a clear error otherwise."""
    path = wrapper_path(settings, directory)
    text = wrapper_text(settings)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        if os.geteuid() != 0:
            raise ConfigurationError(
                f"the AuthorizedKeysCommand wrapper {path} is missing or out of date and only root may install it; "
                "run this command once as root (e.g. `sudo nephelae ssh sshd-config ...`)"
            )
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(0o755)
        temporary.replace(path)
    check_root_owned(path)
    return path


def check_root_owned(path: Path) -> None:
    """sshd's rule for the AuthorizedKeysCommand: it and every directory above, root-owned, not group/world-writable."""
    for part in [path, *path.parents]:
        info = part.stat()
        if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigurationError(
                f"sshd will refuse {path}: {part} must be owned by root and writable by root only; "
                f"fix it with `chown root {part} && chmod go-w {part}`"
            )


def ensure_host_key(settings: Settings) -> Path:
    """The home's ed25519 host key, made with ssh-keygen on first use."""
    directory = ssh_dir(settings)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = directory / HOST_KEY
    if not key.exists():
        try:
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nephelae-host", "-f", str(key)],
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError) as error:
            raise ConfigurationError(
                f"cannot make the SSH host key {key} ({error}); install OpenSSH (apt-get install openssh-server)"
            ) from None
    return key


def sshd_config(
    settings: Settings, *, port: int, wrapper: Path, keys_user: str, host_key: Path, listen: list[str]
) -> str:
    """The text of a complete sshd_config: keys from the platform only, no passwords, nothing forwarded."""
    lines = [
        f"# sshd_config for the Nephelae home {settings.home.resolve()} ({settings.ssh_mode} mode);",
        "# written by `nephelae ssh sshd-config`. Run: /usr/sbin/sshd -D -e -f THIS_FILE",
        f"Port {port}",
        *(f"ListenAddress {address}" for address in listen),
        f"HostKey {host_key}",
        "PidFile none",
        "UsePAM no",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "PermitEmptyPasswords no",
        "AuthorizedKeysFile none",
        f"AuthorizedKeysCommand {wrapper} %u %t %k",
        f"AuthorizedKeysCommandUser {keys_user}",
        "DisableForwarding yes",
        "PermitTunnel no",
        "PrintMotd no",
        "LogLevel VERBOSE",
        "MaxAuthTries 6",
        "LoginGraceTime 30",
        *_mode_lines(settings),
    ]
    return "\n".join(lines) + "\n"


def _mode_lines(settings: Settings) -> list[str]:
    if settings.ssh_mode == "gateway":
        # One login; its key lines force `nephelae ssh shell`; no pty, no environment from the client. A root
        # login (discouraged: prefer a dedicated user owning the home) may only run that forced command.
        root = "forced-commands-only" if settings.ssh_login == "root" else "no"
        return [
            f"AllowUsers {settings.ssh_login}",
            f"PermitRootLogin {root}",
            "PermitTTY no",
            "PermitUserEnvironment no",
        ]
    return [
        "PermitRootLogin no",
        f"AllowGroups {settings.ssh_group}",
        "PermitTTY yes",
        # Only the login environment of the key line (CLI on PATH, URL, session token) is let through.
        f"PermitUserEnvironment {','.join(LOGIN_ENVIRONMENT)}",
        "Subsystem sftp internal-sftp",
    ]
