"""Workspace files: listing, atomic uploads within the size limit and the quota, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from nephelae.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, PermissionDenied, QuotaExceeded
from nephelae.workspaces import Workspace, begin_upload, delete_path, list_entries, open_file, usage_bytes
from nephelae.workspaces.files import UPLOAD_PREFIX, UploadLimits


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.of(tmp_path / "workspaces", "alice")


def put(workspace: Workspace, path: str, data: bytes, limits: UploadLimits | None = None) -> None:
    upload = begin_upload(workspace, path, limits or UploadLimits(max_bytes=1 << 20), declared_size=len(data))
    upload.write(data)
    upload.commit()


def leftovers(workspace: Workspace) -> list[Path]:
    return [path for path in workspace.root.rglob("*") if path.name.startswith(UPLOAD_PREFIX)]


def test_upload_list_read_and_replace(workspace: Workspace) -> None:
    put(workspace, "scripts/mean.py", b"print('hi')\n")
    put(workspace, "results/2020/a.bin", bytes(range(256)))
    assert open_file(workspace, "results/2020/a.bin").read() == bytes(range(256))
    top = list_entries(workspace)
    assert [(entry.path, entry.is_dir) for entry in top] == [("results", True), ("scripts", True)]
    everything = list_entries(workspace, recursive=True)
    assert [entry.path for entry in everything] == [
        "results",
        "results/2020",
        "results/2020/a.bin",
        "scripts",
        "scripts/mean.py",
    ]
    assert {entry.path: entry.size for entry in everything}["results/2020/a.bin"] == 256
    assert [entry.path for entry in list_entries(workspace, "scripts/mean.py")] == ["scripts/mean.py"]
    put(workspace, "scripts/mean.py", b"print('bye')\n")
    assert open_file(workspace, "scripts/mean.py").read() == b"print('bye')\n"
    with pytest.raises(NotFound):
        list_entries(workspace, "nowhere")


def test_an_interrupted_upload_leaves_nothing_and_keeps_the_old_file(workspace: Workspace) -> None:
    put(workspace, "data.bin", b"old contents")
    upload = begin_upload(workspace, "data.bin", UploadLimits(max_bytes=1 << 20))
    upload.write(b"new, half")
    assert leftovers(workspace)  # the bytes so far go to a hidden temporary file...
    assert [entry.path for entry in list_entries(workspace)] == ["data.bin"]  # ...which listings do not show
    upload.abort()  # the connection dropped
    assert open_file(workspace, "data.bin").read() == b"old contents"
    assert not leftovers(workspace)
    upload = begin_upload(workspace, "new/file.bin", UploadLimits(max_bytes=1 << 20))
    upload.write(b"partial")
    upload.abort()
    with pytest.raises(NotFound):
        open_file(workspace, "new/file.bin")


def test_size_limit_is_enforced_while_reading(workspace: Workspace) -> None:
    limits = UploadLimits(max_bytes=100)
    with pytest.raises(PayloadTooLarge, match="larger than the 100 bytes one upload may hold"):
        begin_upload(workspace, "big.bin", limits, declared_size=101)  # refused from Content-Length
    upload = begin_upload(workspace, "big.bin", limits)  # no Content-Length: counted as it comes
    upload.write(b"x" * 60)
    with pytest.raises(PayloadTooLarge):
        upload.write(b"x" * 60)
    assert not leftovers(workspace)
    assert list_entries(workspace) == []
    put(workspace, "exact.bin", b"x" * 100, limits)


def test_quota_counts_the_whole_workspace(workspace: Workspace) -> None:
    limits = UploadLimits(max_bytes=1000, quota_bytes=300)
    put(workspace, "a.bin", b"a" * 200, limits)
    assert usage_bytes(workspace) == 200
    with pytest.raises(QuotaExceeded, match="quota"):
        put(workspace, "b.bin", b"b" * 101, limits)
    upload = begin_upload(workspace, "b.bin", limits)
    with pytest.raises(QuotaExceeded):
        upload.write(b"b" * 101)
    put(workspace, "b.bin", b"b" * 100, limits)
    put(workspace, "a.bin", b"a" * 200, limits)  # replacing a file frees its size first
    assert usage_bytes(workspace) == 300
    delete_path(workspace, "a.bin")
    put(workspace, "c.bin", b"c" * 200, limits)
    assert not leftovers(workspace)


def test_delete_files_and_directories(workspace: Workspace) -> None:
    put(workspace, "results/a.nc", b"1")
    put(workspace, "results/deep/b.nc", b"2")
    with pytest.raises(Conflict, match="not empty"):
        delete_path(workspace, "results")
    delete_path(workspace, "results/a.nc")
    delete_path(workspace, "results", recursive=True)
    assert list_entries(workspace) == []
    with pytest.raises(NotFound):
        delete_path(workspace, "results")


def test_directories_and_files_do_not_swap_silently(workspace: Workspace) -> None:
    put(workspace, "results/a.nc", b"1")
    with pytest.raises(Conflict, match="is a directory"):
        put(workspace, "results", b"2")
    with pytest.raises(InvalidInput, match="is a file, not a directory"):
        put(workspace, "results/a.nc/b.nc", b"3")
    with pytest.raises(InvalidInput, match="reserved"):
        put(workspace, f"{UPLOAD_PREFIX}x", b"4")


def test_a_file_with_other_hard_links_is_not_served(workspace: Workspace, tmp_path: Path) -> None:
    # A hard link names the file itself, not a path: O_NOFOLLOW and the path checks cannot see that its other name
    # may lie outside the workspace (here: a private file of the platform).
    secret = tmp_path / "nephelae.db"
    secret.write_bytes(b"password hashes")
    secret.chmod(0o600)
    (workspace.root / "db").hardlink_to(secret)
    with pytest.raises(PermissionDenied, match="hard links"):
        open_file(workspace, "db")
    (workspace.root / "db").unlink()
    put(workspace, "plain.txt", b"ok")
    assert open_file(workspace, "plain.txt").read() == b"ok"
