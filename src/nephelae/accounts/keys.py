"""SSH public keys: validated, fingerprinted like OpenSSH (SHA256:...), one account per key."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from sqlalchemy import select
from sqlalchemy.orm import Session

from nephelae.accounts import audit
from nephelae.accounts.registry import get_account
from nephelae.db.models import SshKey
from nephelae.errors import Conflict, InvalidInput, NotFound

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    key_data: str  # base64, as in authorized_keys
    comment: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key_data)


def fingerprint(key_data: str) -> str:
    """OpenSSH's SHA256 fingerprint of a base64 key blob."""
    digest = hashlib.sha256(base64.b64decode(key_data)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_public_key(line: str) -> PublicKey:
    """One `TYPE BASE64 [COMMENT]` line, checked: known type, valid blob whose inner type matches, no options."""
    fields = line.strip().split(None, 2)
    if len(fields) < 2:
        raise InvalidInput("not an SSH public key: expected 'TYPE BASE64 [COMMENT]' as in id_ed25519.pub")
    key_type, key_data = fields[0], fields[1]
    if key_type not in KEY_TYPES:
        raise InvalidInput(f"unsupported SSH key type {key_type[:40]!r}; use one of {', '.join(sorted(KEY_TYPES))}")
    try:
        blob = base64.b64decode(key_data, validate=True)
    except binascii.Error:
        raise InvalidInput("the SSH public key's base64 part is damaged") from None
    if blob[4 : 4 + int.from_bytes(blob[:4], "big")] != key_type.encode():
        raise InvalidInput(f"the SSH public key's data is not a {key_type} key")
    if not key_type.startswith("sk-"):
        _check_key_material(f"{key_type} {key_data}", key_type)
    comment = fields[2].strip() if len(fields) > 2 else ""
    if any(ord(char) < 32 or ord(char) == 127 for char in comment):
        raise InvalidInput("the SSH public key's comment contains control characters")
    return PublicKey(key_type=key_type, key_data=key_data, comment=comment[:200])


def _check_key_material(line: str, key_type: str) -> None:
    try:
        key = load_ssh_public_key(line.encode())
    except (ValueError, TypeError):
        raise InvalidInput(f"the SSH public key is not a valid {key_type} key") from None
    size = getattr(key, "key_size", None)
    if key_type == "ssh-rsa" and isinstance(size, int) and size < MIN_RSA_BITS:
        raise InvalidInput(f"RSA keys must have at least {MIN_RSA_BITS} bits (this one has {size}); prefer ed25519")


def add_key(session: Session, username: str, line: str, *, actor: str | None = None) -> SshKey:
    key = parse_public_key(line)
    account = get_account(session, username)
    existing = session.scalar(select(SshKey).where(SshKey.fingerprint == key.fingerprint))
    if existing is not None:
        raise Conflict(f"key {key.fingerprint} is already registered (to {existing.account.username})")
    record = SshKey(
        account=account, key_type=key.key_type, key_data=key.key_data, fingerprint=key.fingerprint, comment=key.comment
    )
    session.add(record)
    audit.record(session, "key.added", actor=actor, subject=username, fingerprint=key.fingerprint)
    session.commit()
    return record


def list_keys(session: Session, username: str) -> list[SshKey]:
    account = get_account(session, username)
    return list(session.scalars(select(SshKey).where(SshKey.account_id == account.id).order_by(SshKey.id)))


def remove_key(session: Session, username: str, key_fingerprint: str, *, actor: str | None = None) -> None:
    account = get_account(session, username)
    record = session.scalar(
        select(SshKey).where(SshKey.account_id == account.id, SshKey.fingerprint == key_fingerprint)
    )
    if record is None:
        raise NotFound(f"{username} has no key {key_fingerprint}; `nephelae admin keys list {username}` shows them")
    session.delete(record)
    audit.record(session, "key.removed", actor=actor, subject=username, fingerprint=key_fingerprint)
    session.commit()


def find_key(session: Session, key_type: str, key_data: str) -> SshKey | None:
    """The registered key with this type and blob, for sshd's AuthorizedKeysCommand."""
    try:
        wanted = fingerprint(key_data)
    except (binascii.Error, ValueError):
        return None
    record = session.scalar(select(SshKey).where(SshKey.fingerprint == wanted))
    return record if record is not None and record.key_type == key_type else None
