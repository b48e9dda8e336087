"""The workspace path door: hostile paths refused, links out of the workspace refused, links inside followed."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import pytest

from nephelae.errors import InvalidInput, NotFound, PermissionDenied
from nephelae.workspaces import Workspace, begin_upload, delete_path, list_entries, open_file, parse_path
from nephelae.workspaces.files import UploadLimits

LIMITS = UploadLimits(max_bytes=1 << 20)


@pytest.fixture
def workspaces(tmp_path: Path) -> Path:
    root = tmp_path / "workspaces"
    (root / "bob").mkdir(parents=True)
    (root / "bob" / "secret.txt").write_text("bob's unpublished results\n")
    return root


@pytest.fixture
def alice(workspaces: Path) -> Workspace:
    workspace = Workspace.of(workspaces, "alice")
    (workspace.root / "data").mkdir()
    (workspace.root / "data" / "sst.txt").write_text("290.1\n")
    return workspace


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../x", "`..` component"),
        ("../bob/secret.txt", "`..` component"),
        ("a/../../b", "`..` component"),
        ("a/./b", "`.` component"),
        ("/etc/passwd", "is absolute"),
        ("//etc/passwd", "is absolute"),
        ("a\\b", "backslash"),
        ("..\\bob\\secret.txt", "backslash"),
        ("a\0b", "control character"),
        ("a\nb", "control character"),
        ("evil\r", "control character"),
        ("a//b", "empty component"),
        ("dir/", "empty component"),
        ("x" * 256, "longer than 255 bytes"),
        ("a/" * 600, "longer than 1024 characters"),
        ("", "is required"),
    ],
)
def test_hostile_paths_are_refused(alice: Workspace, path: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        parse_path(path)
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        open_file(alice, path)
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        begin_upload(alice, path, LIMITS)
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        delete_path(alice, path)


def test_plain_paths_are_accepted() -> None:
    assert parse_path("results/2020/sst mean.nc") == PurePosixPath("results/2020/sst mean.nc")
    assert parse_path(".hidden/été.py") == PurePosixPath(".hidden/été.py")
    assert parse_path("", allow_root=True) == PurePosixPath()


def test_workspace_names_are_checked(workspaces: Path) -> None:
    for name in ("", "..", "a/b", "."):
        with pytest.raises(InvalidInput):
            Workspace.of(workspaces, name)
    assert Workspace.of(workspaces, "carol").root.stat().st_mode & 0o077 in (0, 0o011)  # nobody else lists it


def test_a_link_to_etc_is_refused_everywhere(alice: Workspace) -> None:
    (alice.root / "passwd").symlink_to("/etc/passwd")
    (alice.root / "etc").symlink_to("/etc")
    for path in ("passwd", "etc/passwd", "etc"):
        with pytest.raises(PermissionDenied, match="leads outside your workspace"):
            open_file(alice, path)
        with pytest.raises(PermissionDenied, match="leads outside your workspace"):
            list_entries(alice, path)
    with pytest.raises(PermissionDenied, match="leads outside your workspace"):
        begin_upload(alice, "etc/evil.conf", LIMITS)
    with pytest.raises(PermissionDenied, match="leads outside your workspace"):
        begin_upload(alice, "passwd", LIMITS)  # writing through the link would replace /etc/passwd
    assert not Path("/etc/evil.conf").exists()


def test_a_link_to_another_workspace_is_refused(alice: Workspace, workspaces: Path) -> None:
    (alice.root / "bobs").symlink_to(workspaces / "bob")
    (alice.root / "stolen.txt").symlink_to(workspaces / "bob" / "secret.txt")
    (alice.root / "relative").symlink_to("../bob/secret.txt")
    for path in ("bobs/secret.txt", "stolen.txt", "relative"):
        with pytest.raises(PermissionDenied):
            open_file(alice, path)
    with pytest.raises(PermissionDenied):
        begin_upload(alice, "bobs/planted.py", LIMITS)
    with pytest.raises(PermissionDenied):
        delete_path(alice, "bobs/secret.txt")
    assert (workspaces / "bob" / "secret.txt").exists()


def test_removing_a_link_removes_the_link_not_its_target(alice: Workspace, workspaces: Path) -> None:
    (alice.root / "stolen.txt").symlink_to(workspaces / "bob" / "secret.txt")
    delete_path(alice, "stolen.txt")
    assert not (alice.root / "stolen.txt").is_symlink()
    assert (workspaces / "bob" / "secret.txt").read_text() == "bob's unpublished results\n"


def test_links_inside_the_workspace_are_followed(alice: Workspace) -> None:
    (alice.root / "latest").symlink_to("data")
    (alice.root / "sst-link.txt").symlink_to(alice.root / "data" / "sst.txt")
    assert open_file(alice, "latest/sst.txt").read() == b"290.1\n"
    assert open_file(alice, "sst-link.txt").read() == b"290.1\n"
    assert [entry.path for entry in list_entries(alice, "latest")] == ["data/sst.txt"]


def test_a_link_swapped_in_after_the_check_is_not_followed(alice: Workspace, workspaces: Path) -> None:
    """The race a running script could play: the path is resolved, then a directory becomes a link out."""
    relative = alice.resolve(parse_path("data/sst.txt"))
    os.rename(alice.root / "data", alice.root / "data.old")
    (alice.root / "data").symlink_to(workspaces / "bob")
    with pytest.raises(PermissionDenied, match="replaced by a symbolic link"), alice.directory(relative.parent):
        pass


def test_special_files_and_directories_are_not_downloaded(alice: Workspace) -> None:
    os.mkfifo(alice.root / "pipe")
    with pytest.raises(InvalidInput, match="not a regular file"):
        open_file(alice, "pipe")  # and does not hang waiting for a writer
    with pytest.raises(InvalidInput, match="is a directory"):
        open_file(alice, "data")
    with pytest.raises(NotFound, match="does not exist"):
        open_file(alice, "nothing.nc")
    with pytest.raises(InvalidInput, match="is a file, not a directory"):
        open_file(alice, "data/sst.txt/x")


def test_a_loop_of_links_is_a_clear_refusal(alice: Workspace) -> None:
    # A script may plant one; the API must answer with its error shape, not an internal error.
    (alice.root / "a").symlink_to("b")
    (alice.root / "b").symlink_to("a")
    for call in (lambda: open_file(alice, "a"), lambda: list_entries(alice, "a/x"),
                 lambda: begin_upload(alice, "b/new.txt", LIMITS)):  # fmt: skip
        with pytest.raises(InvalidInput, match="loop of symbolic links"):
            call()
    delete_path(alice, "a")  # the link itself can still be removed
    assert not (alice.root / "a").is_symlink()
