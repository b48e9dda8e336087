"""The one narrow door for paths inside a user's workspace.

A workspace path comes from outside (a URL, a command line, a JSON body): `parse_path` accepts only relative POSIX
paths made of plain names, no `..`, no backslashes, no control characters. `Workspace` then reaches the file without
ever leaving the workspace: the path is resolved (a symlink inside the workspace is followed, one leading out of it is
refused), and the resolved path is opened component by component from the workspace's directory with `O_NOFOLLOW`.
Sandboxed scripts write in the workspace while the server reads it, so a link swapped in between the check and the
open makes the open fail instead of escaping.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from nephelae.errors import InvalidInput, NotFound, PermissionDenied

MAX_PATH_CHARS = 1024
MAX_NAME_BYTES = 255  # NAME_MAX of Linux file systems
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# No other host account may list a workspace. As root, sandboxes run as leased uids (`nephelae.sandbox.identity`):
# bubblewrap, root without capabilities, must traverse the workspace to start in it, and a campaign's sandbox read
# its script, hence search permission for others there (keep NEPHELAE_HOME itself private to root).
WORKSPACE_MODE = 0o700
WORKSPACE_MODE_AS_ROOT = 0o711


def parse_path(text: str, *, allow_root: bool = False) -> PurePosixPath:
    """A workspace path from outside, checked: relative, POSIX, plain names only; `""` is the root if allowed."""
    if text == "" and allow_root:
        return PurePosixPath()
    if not text:
        raise InvalidInput("a workspace path is required, e.g. `results/sst.nc`")
    if len(text) > MAX_PATH_CHARS:
        raise InvalidInput(f"workspace path is longer than {MAX_PATH_CHARS} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise InvalidInput(f"workspace path {text!r} holds a control character (NUL, newline...); rename the file")
    if "\\" in text:
        raise InvalidInput(f"workspace path {text!r} holds a backslash; separate directories with `/`")
    if text.startswith("/"):
        raise InvalidInput(f"workspace path {text!r} is absolute; give it relative to your workspace")
    for name in text.split("/"):
        _check_name(text, name)
    return PurePosixPath(text)


def _check_name(text: str, name: str) -> None:
    if name in ("", ".", ".."):
        what = "an empty component (`//` or a trailing `/`)" if not name else f"a `{name}` component"
        raise InvalidInput(f"workspace path {text!r} has {what}; name files from your workspace's top, e.g. `a/b.py`")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise InvalidInput(f"a name in workspace path {text!r} is longer than {MAX_NAME_BYTES} bytes")


class Workspace:
    """The storage of one account, `NEPHELAE_HOME/workspaces/<username>/`, reached only through this door."""

    def __init__(self, root: Path, owner: str) -> None:
        self.root = root
        self.owner = owner

    @classmethod
    def of(cls, workspaces_dir: Path, username: str) -> Workspace:
        """The workspace of `username` under `workspaces_dir`, created (private to the platform) if missing."""
        if not username or "/" in username or username in (".", "..") or "\0" in username:
            raise InvalidInput(f"{username!r} cannot name a workspace")
        root = workspaces_dir / username
        mode = WORKSPACE_MODE_AS_ROOT if os.geteuid() == 0 else WORKSPACE_MODE
        root.mkdir(mode=mode, parents=True, exist_ok=True)
        return cls(root, username)

    def resolve(self, relative: PurePosixPath) -> PurePosixPath:
        """`relative` with the symlinks inside the workspace followed; refused if it leads out of the workspace."""
        top = self.root.resolve()
        try:
            resolved = top.joinpath(*relative.parts).resolve()
        except (RuntimeError, OSError):  # a loop of links (RuntimeError before Python 3.13), links too long
            raise InvalidInput(
                f"{relative} in your workspace cannot be followed (a loop of symbolic links?); "
                "remove the link with `nephelae files rm`"
            ) from None
        if resolved != top and top not in resolved.parents:
            raise PermissionDenied(
                f"{relative} leads outside your workspace (a symbolic link?); copy the file into the workspace instead"
            )
        return PurePosixPath(resolved.relative_to(top).as_posix())

    def resolve_parent(self, relative: PurePosixPath) -> PurePosixPath:
        """`relative` with its directory resolved but not its last name: the link itself, not where it points."""
        if not relative.parts:
            raise InvalidInput("the top of your workspace cannot be replaced or removed")
        return self.resolve(relative.parent) / relative.name

    def open_directory(self, relative: PurePosixPath, *, create: bool = False) -> int:
        """A file descriptor of the directory `relative` (already resolved), opened without following any link.

        `create` makes the missing directories on the way, like `mkdir -p`. The caller closes the descriptor.
        """
        fd = os.open(self.root, DIRECTORY_FLAGS & ~os.O_NOFOLLOW)  # the root itself is the operator's to place
        try:
            for index, name in enumerate(relative.parts):
                child = _enter(fd, name, relative, index, create=create)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextmanager
    def directory(self, relative: PurePosixPath, *, create: bool = False) -> Iterator[int]:
        """`open_directory`, closed at the end of the block."""
        fd = self.open_directory(relative, create=create)
        try:
            yield fd
        finally:
            os.close(fd)

    def display(self, relative: PurePosixPath) -> str:
        """How a path is shown to the user: relative to the workspace, `.` for its top."""
        return relative.as_posix() or "."


def _enter(parent: int, name: str, relative: PurePosixPath, index: int, *, create: bool) -> int:
    """Open `name` inside `parent` as a directory, never through a link."""
    where = PurePosixPath(*relative.parts[: index + 1])
    try:
        if create:
            with suppress(FileExistsError):
                os.mkdir(name, dir_fd=parent)
        return os.open(name, DIRECTORY_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise NotFound(f"{where} does not exist in your workspace; `nephelae files ls` shows what does") from None
    except NotADirectoryError:
        raise _not_a_directory(parent, name, where) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise PermissionDenied(f"{where} in your workspace was replaced by a symbolic link; try again") from None
        raise PermissionDenied(f"cannot open {where} in your workspace: {error.strerror}") from None


def _not_a_directory(parent: int, name: str, where: PurePosixPath) -> InvalidInput | PermissionDenied:
    # O_NOFOLLOW on a symlink gives ENOTDIR with O_DIRECTORY: a link replaced the directory after it was checked.
    if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
        return PermissionDenied(f"{where} in your workspace was replaced by a symbolic link; try again")
    return InvalidInput(f"{where} in your workspace is a file, not a directory")
