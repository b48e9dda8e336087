"""The network gate in the firewall: the union of the allowed ranges, as an nftables ruleset.

sshd checks `from=` only after a key has been accepted, and the HTTP server checks addresses per request; the
firewall keeps everyone else from reaching either at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from nephelae.accounts.networks import IPNetwork, parse_network

TABLE = "nephelae"


def merged_ranges(cidrs: Iterable[str]) -> tuple[list[IPNetwork], list[IPNetwork]]:
    """The ranges merged (overlaps and neighbours collapsed), IPv4 and IPv6 apart."""
    networks = [parse_network(cidr) for cidr in cidrs]
    four = [network for network in networks if isinstance(network, ipaddress.IPv4Network)]
    six = [network for network in networks if isinstance(network, ipaddress.IPv6Network)]
    return list(ipaddress.collapse_addresses(four)), list(ipaddress.collapse_addresses(six))


def nft_ruleset(cidrs: Iterable[str], ports: Iterable[int]) -> str:
    """An `nft -f` file: drop TCP to `ports` from outside the ranges; loopback (the entry point itself) passes.

    It replaces the table of an earlier run (declared, deleted, declared again: `nft -f` applies it atomically).
    """
    four, six = merged_ranges(cidrs)
    port_list = ", ".join(str(port) for port in sorted(set(ports)))
    return "\n".join(
        [
            f"table inet {TABLE}",
            f"delete table inet {TABLE}",
            f"table inet {TABLE} {{",
            *_set("allowed4", "ipv4_addr", four),
            *_set("allowed6", "ipv6_addr", six),
            "\tchain input {",
            "\t\ttype filter hook input priority filter - 10; policy accept;",
            '\t\tiifname "lo" accept',
            f"\t\ttcp dport {{ {port_list} }} ip saddr != @allowed4 drop",
            f"\t\ttcp dport {{ {port_list} }} ip6 saddr != @allowed6 drop",
            "\t}",
            "}",
            "",
        ]
    )


def _set(name: str, kind: str, networks: list[IPNetwork]) -> list[str]:
    lines = [f"\tset {name} {{", f"\t\ttype {kind}", "\t\tflags interval"]
    if networks:  # an empty `elements = { }` is a syntax error; an empty set matches nothing
        lines.append(f"\t\telements = {{ {', '.join(str(network) for network in networks)} }}")
    return [*lines, "\t}"]
