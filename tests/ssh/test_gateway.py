"""The gateway's whitelist: what an SSH command may be, before anything runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nephelae.errors import PermissionDenied
from nephelae.ssh.gateway import check_paths, parse_command


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("whoami", ["whoami"]),
        ("nephelae whoami --json", ["whoami", "--json"]),
        ("datasets list", ["datasets", "list"]),
        ("search demo-l4-sst --bbox -80,0,0,60 --time '2020-01-01/..'", ["search", "demo-l4-sst", "--bbox",
         "-80,0,0,60", "--time", "2020-01-01/.."]),
        ("files ls", ["files", "ls"]),
        ("datasets --help", ["datasets", "--help"]),
        ("datasets show demo-l4-sst", ["datasets", "show", "demo-l4-sst"]),
        ("run script.py", ["run", "script.py"]),
        ("campaigns list", ["campaigns", "list"]),
        ("search 'a;b'", ["search", "a;b"]),  # a metacharacter is only a character: no shell ever sees it
    ],
)  # fmt: skip
def test_allowed_commands_are_split_without_a_shell(text: str, words: list[str]) -> None:
    assert parse_command(text) == words


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, "no interactive shell"),
        ("   ", "no interactive shell"),
        ("bash -c id", "command 'bash' is not allowed here"),
        ("id", "command 'id' is not allowed here"),
        ("nephelae admin accounts list", "command 'admin' is not allowed"),
        ("nephelae ssh shell --account admin", "command 'ssh' is not allowed"),
        ("serve", "command 'serve' is not allowed"),
        ("db upgrade", "command 'db' is not allowed"),
        ("whoami\nid", "newlines and control characters are refused"),
        ("whoami\rid", "newlines and control characters are refused"),
        ("whoami\x00", "newlines and control characters are refused"),
        ("whoami\x1b[2J", "newlines and control characters are refused"),
        ("datasets list --home /etc", "option --home is not allowed"),
        ("datasets list --home=/tmp/x", "option --home is not allowed"),
        ("search 'unterminated", "cannot parse the command"),
        ("whoami " + "x" * 5000, "longer than 4096"),
        ("$(id)", "is not allowed here"),
        ("`id`", "is not allowed here"),
        ("whoami;id", "command 'whoami;id' is not allowed"),
        (
            "datasets add evil / --pattern '*' --public",
            "`datasets add` is not allowed here; allowed: datasets list, show",
        ),
        ("datasets index demo-l4-sst", "`datasets index` is not allowed here"),
        ("campaigns purge", "`campaigns purge` is not allowed here"),
    ],
)
def test_anything_else_is_refused_with_what_is_allowed(text: str | None, why: str) -> None:
    with pytest.raises(PermissionDenied) as refused:
        parse_command(text)
    assert why in refused.value.detail
    if why.startswith("command "):
        assert "whoami, datasets, search, campaigns, analysis, files, run" in refused.value.detail


def test_paths_must_stay_in_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "alice"
    (workspace / "scripts").mkdir(parents=True)
    (workspace / "scripts" / "a.py").write_text("")
    os.symlink("/etc/passwd", workspace / "passwd")
    check_paths(["run", "scripts/a.py"], workspace)
    check_paths(["search", "demo", "--time", "../2020-01-31", "--bbox=-80,0,0,60", "--limit", "5"], workspace)
    check_paths(["campaigns", "submit", "./spec.yaml"], workspace)  # not there yet: still inside
    for words in (
        ["campaigns", "submit", "/etc/shadow"],
        ["campaigns", "submit", "../bob/spec.yaml"],
        ["files", "get", "x", "--output=../../x"],
        ["analysis", "map", "-o", "/tmp/out.png"],
        ["campaigns", "submit", "passwd"],  # a symlink out of the workspace
        ["run", "~/x.py"],
    ):
        with pytest.raises(PermissionDenied, match="leads outside your workspace"):
            check_paths(words, workspace)


@pytest.mark.parametrize(
    "words",
    [
        ["analysis", "timeseries", "demo", "-v", "sst", "--format", "csv", "-o/tmp/out.csv"],  # click reads /tmp/...
        ["files", "ls", "-ro/etc/x"],  # a cluster: -r, then -o with its value glued on
        ["analysis", "map", "demo", "-vsst", "-o../../x.png"],
        ["analysis", "map", "demo", "-o~/x.png"],
    ],
)
def test_a_value_glued_to_a_short_option_is_checked_as_a_path(tmp_path: Path, words: list[str]) -> None:
    with pytest.raises(PermissionDenied, match="leads outside your workspace"):
        check_paths(words, tmp_path)


def test_glued_short_options_inside_the_workspace_pass(tmp_path: Path) -> None:
    check_paths(["analysis", "map", "demo", "-vsst", "-oout.png", "--bbox", "-80,0,0,60"], tmp_path)
    with pytest.raises(PermissionDenied, match="too long"):
        check_paths(["files", "ls", "-" + "r" * 100 + "o/etc/x"], tmp_path)


@pytest.mark.parametrize("char", ["\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u200b", "\ufeff"])
def test_unicode_controls_and_line_separators_are_refused(char: str) -> None:
    with pytest.raises(PermissionDenied, match="control characters are refused"):
        parse_command(f"files ls a{char}b")


def test_fifos_and_devices_are_not_read_by_the_gateway(tmp_path: Path) -> None:
    # A script may make a FIFO in its workspace: `files put fifo` would wait forever for a writer.
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(PermissionDenied, match="not a regular file or directory"):
        check_paths(["files", "put", "fifo"], tmp_path)
    (tmp_path / "spec.yaml").write_text("name: x\n")
    check_paths(["campaigns", "submit", "spec.yaml"], tmp_path)
    check_paths(["files", "get", "a.nc", "."], tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        # After `--` click reads `--time` as REMOTE and the next word as LOCAL: the workspace file `--time` would be
        # written over the home's settings, as the service login.
        "files get -- --time /srv/nephelae/nephelae.toml",
        "files get -- --bbox ../../nephelae.db",
        # -v swallows `--time`, which then no longer protects the next word from the check.
        "analysis map demo -v --time -o/srv/nephelae/nephelae.db",
        "analysis map demo -v --bbox -o ../../nephelae.db",
        # -o swallows a word that looks like a long option but is a path.
        "analysis map demo -v sst -o --x/../../../etc/cron.d/x",
        "search demo --time ../../../etc/x",
    ],
)
def test_words_click_reads_as_paths_are_checked_whatever_they_look_like(tmp_path: Path, text: str) -> None:
    with pytest.raises(PermissionDenied, match="leads outside your workspace"):
        check_paths(parse_command(text), tmp_path)
