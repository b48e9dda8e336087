"""Handing a sandbox's writable mounts to its leased uid: everything inside changes hands, nothing outside does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nephelae.sandbox.identity import Identity, give_directories, lease_identity


@pytest.fixture
def identity() -> Iterator[Identity]:
    leased = lease_identity()
    if leased is None:
        pytest.fail("these tests run as root, where sandboxes get leased uids (run the suite as root, as CI does)")
    yield leased
    leased.release()


def test_the_whole_tree_changes_hands_but_not_what_links_lead_to(identity: Identity, tmp_path: Path) -> None:
    workspace, outside = tmp_path / "workspace", tmp_path / "outside"
    (workspace / "results" / "deep").mkdir(parents=True)
    outside.mkdir()
    (workspace / "script.py").write_text("print('hi')\n")
    (workspace / "results" / "deep" / "out.nc").write_bytes(b"data")
    secret = outside / "shadow"
    secret.write_text("root:x\n")
    (workspace / "to-secret").symlink_to(secret)  # a symbolic link: not followed
    os.link(secret, workspace / "hard-secret")  # a second name of a file outside (protected_hardlinks off)
    give_directories(identity, (workspace,))
    owned = [workspace, workspace / "script.py", workspace / "results", workspace / "results" / "deep"]
    owned.append(workspace / "results" / "deep" / "out.nc")
    assert all(path.lstat().st_uid == identity.uid for path in owned)
    assert secret.stat().st_uid == 0 and (workspace / "hard-secret").stat().st_uid == 0
    assert oct(secret.stat().st_mode & 0o777) == oct(0o644)
