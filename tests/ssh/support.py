"""Helpers of the SSH tests: key pairs made with `cryptography`, written as OpenSSH writes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: str  # the `.pub` line

    @property
    def key_type(self) -> str:
        return self.public.split()[0]

    @property
    def key_data(self) -> str:
        return self.public.split()[1]


def make_key(directory: Path, name: str) -> KeyPair:
    """A new ed25519 key pair in `directory` (private key readable by its owner only, as ssh demands)."""
    key = Ed25519PrivateKey.generate()
    private = directory / name
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {name}@test"
    (directory / f"{name}.pub").write_text(line + "\n")
    return KeyPair(private, line)
