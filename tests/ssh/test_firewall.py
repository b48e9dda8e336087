"""`nephelae admin firewall --format nft`: the allowed ranges as nftables rules, checked by `nft -c`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nephelae.accounts import networks
from nephelae.config import Settings
from nephelae.db import session_factory
from nephelae.ssh.firewall import merged_ranges, nft_ruleset
from tests.api.support import People
from tests.cli.test_cli import run
from tests.support.system import ensure_tool


def nft_check(ruleset: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`nft -c -f`: nftables parses and checks the ruleset against the kernel without applying it."""
    nft = ensure_tool("nft", "nftables")
    path = tmp_path / "nephelae.nft"
    path.write_text(ruleset)
    return subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True, check=False)


def test_ranges_are_merged_per_family() -> None:
    four, six = merged_ranges(
        ["10.0.0.0/25", "10.0.0.128/25", "10.0.0.7", "192.0.2.0/24", "2001:db8::/48", "2001:db8:0:1::/64"]
    )
    assert [str(network) for network in four] == ["10.0.0.0/24", "192.0.2.0/24"]
    assert [str(network) for network in six] == ["2001:db8::/48"]


def test_the_ruleset_is_valid_nftables(tmp_path: Path) -> None:
    ruleset = nft_ruleset(["10.0.0.0/25", "10.0.0.128/25", "2001:db8::/48", "192.0.2.1"], [2222, 8000])
    assert "elements = { 10.0.0.0/24, 192.0.2.1/32 }" in ruleset and "elements = { 2001:db8::/48 }" in ruleset
    assert "tcp dport { 2222, 8000 } ip saddr != @allowed4 drop" in ruleset
    assert "tcp dport { 2222, 8000 } ip6 saddr != @allowed6 drop" in ruleset
    checked = nft_check(ruleset, tmp_path)
    assert checked.returncode == 0, checked.stderr
    empty = nft_ruleset([], [22])  # nobody allowed: both sets empty, everyone dropped
    assert "elements" not in empty
    checked = nft_check(empty, tmp_path)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_command_prints_the_ranges_of_approved_accounts(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    assert settings.database_url is not None
    monkeypatch.setenv("NEPHELAE_DATABASE_URL", settings.database_url)
    people = People(session_factory(engine))
    people.account("alice", allow=("10.2.0.0/24", "10.2.1.0/24", "2001:db8:1::/48"))
    people.account("bob", allow=("10.2.0.0/16",))
    people.account("carol", status="suspended", allow=("198.51.100.0/24",))
    people.account("dave", status="pending", allow=())
    with session_factory(engine)() as session:
        networks.allow_network(session, "dave", "203.0.113.0/24", actor="setup")
    code, out, err = run(capsys, "admin", "firewall", "--format", "nft", "--home", str(settings.home))
    assert code == 0, err
    assert "elements = { 10.2.0.0/16 }" in out  # merged: alice's two /24 lie in bob's /16
    assert "elements = { 2001:db8:1::/48 }" in out
    assert "198.51.100" not in out and "203.0.113" not in out  # suspended and pending accounts get nothing
    assert "tcp dport { 2222, 8000 }" in out  # ssh_port and port, by default
    checked = nft_check(out, tmp_path)
    assert checked.returncode == 0, checked.stderr
    code, out, err = run(capsys, "admin", "firewall", "--format", "iptables", "--home", str(settings.home))
    assert code != 0 and "iptables" in err
