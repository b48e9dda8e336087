"""Allowed networks: the CIDR ranges an account may connect from, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from sqlalchemy.orm import Session

from nephelae.accounts import audit
from nephelae.accounts.registry import decide, get_account
from nephelae.db.models import Account, AllowedNetwork
from nephelae.errors import Conflict, InvalidInput, NotFound

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_network(text: str) -> IPNetwork:
    """A CIDR range (a bare address means just that address); host bits are cleared: 10.2.3.4/24 -> 10.2.3.0/24."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidInput(f"{text!r} is not an IP address or CIDR range (e.g. 10.2.3.0/24 or 2001:db8::/48)") from None


def parse_address(text: str) -> IPAddress:
    """A peer address; IPv4-mapped IPv6 (::ffff:1.2.3.4) is the IPv4 address it maps."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_in(address: str, cidrs: Iterable[str]) -> bool:
    """Whether `address` lies in one of `cidrs`; False for anything unparsable."""
    try:
        peer = parse_address(address)
    except ValueError:
        return False
    return any(peer in parse_network(cidr) for cidr in cidrs)


def suggested_range(address: str) -> str:
    """The range to suggest to an operator for a refused address: its /24 (IPv4) or /64 (IPv6)."""
    peer = parse_address(address)
    prefix = 24 if peer.version == 4 else 64
    return str(ipaddress.ip_network(f"{peer}/{prefix}", strict=False))


def allow_network(session: Session, username: str, cidr: str, *, actor: str | None = None) -> AllowedNetwork:
    """Let `username` connect from `cidr`."""
    account = get_account(session, username)
    network = str(parse_network(cidr))
    if any(existing.cidr == network for existing in account.networks):
        raise Conflict(f"{network} is already allowed for {username}")
    allowed = AllowedNetwork(cidr=network)
    account.networks.append(allowed)
    audit.record(session, "network.allowed", actor=actor, subject=username, cidr=network)
    session.commit()
    return allowed


def remove_network(session: Session, username: str, cidr: str, *, actor: str | None = None) -> None:
    """Stop `username` connecting from `cidr`."""
    account = get_account(session, username)
    network = str(parse_network(cidr))
    matching = [existing for existing in account.networks if existing.cidr == network]
    if not matching:
        allowed = ", ".join(n.cidr for n in account.networks) or "none"
        raise NotFound(f"{network} is not an allowed range of {username} (allowed: {allowed})")
    account.networks.remove(matching[0])
    audit.record(session, "network.removed", actor=actor, subject=username, cidr=network)
    session.commit()


def approve(session: Session, username: str, allow: Iterable[str] = (), *, actor: str | None = None) -> Account:
    """Approve an account and allow the ranges it connects from; every range is checked before anything changes."""
    wanted = list(dict.fromkeys(str(parse_network(cidr)) for cidr in allow))
    account = decide(session, username, "approve", actor=actor)
    for cidr in wanted:
        if cidr not in {network.cidr for network in account.networks}:
            allow_network(session, username, cidr, actor=actor)
    return account
