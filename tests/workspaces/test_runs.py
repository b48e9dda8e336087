"""`run_workspace_script` under real bubblewrap: the toolbox works on the archive; escapes and runaways do not.

One platform home for the module (SQLite): the demo archive of one day registered as a dataset of alice's project,
another archive she may not read, and bob's workspace beside hers.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from nephelae.accounts import Principal, authenticate_token, projects
from nephelae.accounts.audit import list_events
from nephelae.catalog.datasets import add_dataset
from nephelae.config import Settings, load_settings, prepare_home
from nephelae.db import make_engine, session_factory, upgrade
from nephelae.demo.archive import build_demo_archive
from nephelae.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from nephelae.sandbox import SandboxTimeout
from nephelae.workspaces import (
    Workspace,
    begin_upload,
    list_entries,
    open_file,
    readable_roots,
    run_workspace_script,
    upload_limits,
    workspace_lock,
)
from tests.api.support import People
from tests.sandbox.conftest import bubblewrap

__all__ = ["bubblewrap"]  # the session fixture that installs bwrap when missing, autouse here too


@dataclass
class Platform:
    settings: Settings
    sessions: sessionmaker[Session]
    alice: str  # tokens
    bob: str
    granule: Path  # a demo L4 file alice may read
    archive: Path  # the root of its dataset
    hidden: Path  # a file of an archive she may not read

    def principal(self, token: str) -> Principal:
        with self.sessions() as session:
            return authenticate_token(session, token, "127.0.0.1")

    def write(self, username: str, path: str, text: str) -> None:
        workspace = Workspace.of(self.settings.workspaces_dir, username)
        upload = begin_upload(workspace, path, upload_limits(self.settings))
        upload.write(textwrap.dedent(text).encode())
        upload.commit()

    def run(self, token: str, script: str, *args: str, settings: Settings | None = None) -> tuple[int, str, str]:
        with self.sessions() as session:
            result = run_workspace_script(session, settings or self.settings, self.principal(token), script, args)
        assert result.duration > 0
        return result.exit_status, result.stdout, result.stderr


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("runs")
    settings = load_settings(
        root / "home", database_url=f"sqlite:///{root / 'test.db'}", task_timeout_seconds=60, task_memory_mb=1536
    )
    prepare_home(settings)
    engine = make_engine(settings.database)
    upgrade(engine)
    sessions = session_factory(engine)
    people = People(sessions)
    alice, bob = people.account("alice"), people.account("bob")
    demo = {dataset.id: dataset for dataset in build_demo_archive(settings.archive_dir / "demo", days=1)}
    l4 = demo["demo-l4-sst"]
    hidden_root = settings.archive_dir / "embargoed"
    hidden_root.mkdir()
    (hidden_root / "secret.nc").write_bytes(b"embargoed data")
    with sessions() as session:
        projects.create_project(session, "oceanheatflux", actor="setup")
        projects.add_member(session, "oceanheatflux", "alice", actor="setup")
        add_dataset(session, "demo-l4-sst", str(l4.root), l4.pattern, projects=["oceanheatflux"], actor="setup")
        add_dataset(session, "embargoed", str(hidden_root), "*.nc", actor="setup")
        session.commit()
    granule = next(l4.root.rglob("*.nc"))
    yield Platform(settings, sessions, alice, bob, granule, l4.root.resolve(), hidden_root / "secret.nc")
    engine.dispose()


TOOLBOX_SCRIPT = """
    import sys
    from pathlib import Path

    import xarray as xr
    import nephelae.toolbox as toolbox

    ds = xr.open_dataset(sys.argv[1])
    box = toolbox.subset(ds, bbox=(-80, 0, 0, 60), variables=["analysed_sst"])
    mean = float(box.analysed_sst.mean())
    Path("results").mkdir(exist_ok=True)
    box.mean("time").to_netcdf("results/atlantic-mean.nc")
    print(f"mean {mean:.2f}")
    print("workspace", Path.cwd())
"""


def test_a_script_reads_the_archive_with_the_toolbox_and_writes_its_workspace(platform: Platform) -> None:
    platform.write("alice", "mean.py", TOOLBOX_SCRIPT)
    status, out, err = platform.run(platform.alice, "mean.py", str(platform.granule))
    assert status == 0, err
    mean = float(out.split()[1])
    assert 270 < mean < 310  # kelvin, the Atlantic's SST
    workspace = Workspace.of(platform.settings.workspaces_dir, "alice")
    assert f"workspace {workspace.root.resolve()}" in out
    result = open_file(workspace, "results/atlantic-mean.nc")
    assert result.entry.size > 1000 and result.read().startswith(b"\x89HDF")

    # a second run (another sandbox uid when the platform is root) writes where the first one and an upload did
    platform.write("alice", "results/notes/readme.txt", "uploaded by alice\n")
    platform.write("alice", "append.py", "open('results/notes/readme.txt', 'a').write('and by a script\\n')\n")
    status, _, err = platform.run(platform.alice, "append.py")
    assert status == 0, err
    assert open_file(workspace, "results/notes/readme.txt").read() == b"uploaded by alice\nand by a script\n"
    writable_by_all = [path for path in workspace.root.rglob("*") if path.lstat().st_mode & 0o002]
    assert writable_by_all == []  # handed to each run's uid, never opened to everyone

    with platform.sessions() as session:
        events = list_events(session, actor="alice", kind="workspace.run")
    assert [event.detail["script"] for event in events][:2] == ["append.py", "mean.py"]
    assert events[0].detail["exit_status"] == 0


ESCAPES = """
    import json, os, socket, sys

    def attempt(action):
        try:
            return f"ALLOWED: {action()!r}"[:200]
        except BaseException as error:
            return f"refused: {type(error).__name__}"

    def connect():
        with socket.create_connection(("1.1.1.1", 53), timeout=3):
            return "connected"

    def local_server():
        with socket.create_connection(("127.0.0.1", 22), timeout=3):
            return "connected"

    def write_archive():
        with open(sys.argv[1], "ab") as granule:
            return granule.write(b"corrupted")

    outcomes = {
        "network": attempt(connect),
        "host loopback": attempt(local_server),
        "write archive": attempt(write_archive),
        "new file in archive": attempt(lambda: open(os.path.join(os.path.dirname(sys.argv[1]), "x.nc"), "w")),
        "bob's workspace": attempt(lambda: open(sys.argv[2]).read()),
        "list workspaces": attempt(lambda: os.listdir(os.path.dirname(os.path.dirname(sys.argv[2])))),
        "embargoed archive": attempt(lambda: open(sys.argv[3], "rb").read()),
        "shadow": attempt(lambda: open("/etc/shadow").read()),
        "platform database": attempt(lambda: open(sys.argv[4], "rb").read()),
        "platform settings": attempt(lambda: open(sys.argv[5]).read()),
    }
    print(json.dumps(outcomes))
"""


def test_a_script_cannot_escape(platform: Platform) -> None:
    platform.write("bob", "secret.txt", "bob's unpublished results\n")
    bob_secret = Workspace.of(platform.settings.workspaces_dir, "bob").root / "secret.txt"
    platform.write("alice", "escape.py", ESCAPES)
    before = platform.granule.read_bytes()
    database = platform.settings.database.removeprefix("sqlite:///")
    paths = (platform.granule, bob_secret, platform.hidden, database, platform.settings.home / "nephelae.toml")
    status, out, err = platform.run(platform.alice, "escape.py", *map(str, paths))
    assert status == 0, err
    outcomes = json.loads(out)
    assert outcomes.pop("list workspaces") == "ALLOWED: ['alice']"  # bob's is not even there
    allowed = {name: outcome for name, outcome in outcomes.items() if outcome.startswith("ALLOWED")}
    assert not allowed, allowed
    assert platform.granule.read_bytes() == before
    assert not (platform.granule.parent / "x.nc").exists()


def test_only_readable_local_archives_are_mounted(platform: Platform) -> None:
    with platform.sessions() as session:
        roots = readable_roots(session, platform.settings, platform.principal(platform.alice))
        assert roots == (platform.archive,)  # not the embargoed archive
        add_dataset(session, "everything", str(platform.settings.home), "**/*.nc", public=True, actor="setup")
        add_dataset(session, "on-s3", "s3://bucket/sst", "*.nc", public=True, actor="setup")
        session.commit()
        widened = readable_roots(session, platform.settings, platform.principal(platform.alice))
        assert widened == roots  # a root holding the workspaces is never mounted; a URL has nothing to mount


def test_a_failing_script_reports_its_status_and_traceback(platform: Platform) -> None:
    platform.write(
        "alice", "fails.py", "import sys\nprint('starting')\nraise SystemExit('bad input: ' + sys.argv[1])\n"
    )
    assert platform.run(platform.alice, "fails.py", "x") == (1, "starting\n", "bad input: x\n")
    platform.write("alice", "crash.py", "raise ValueError('no such variable')\n")
    status, _, err = platform.run(platform.alice, "crash.py")
    assert status == 1 and "Traceback" in err and "ValueError: no such variable" in err


def test_a_runaway_script_is_killed_at_the_time_limit(platform: Platform) -> None:
    platform.write("alice", "forever.py", "print('looping', flush=True)\nwhile True:\n    pass\n")
    quick = platform.settings.model_copy(update={"task_timeout_seconds": 2})
    with pytest.raises(SandboxTimeout, match="did not finish within 2 s and was killed"):
        platform.run(platform.alice, "forever.py", settings=quick)
    with platform.sessions() as session:
        (event,) = list_events(session, actor="alice", kind="workspace.run", limit=1)
    assert event.detail["exit_status"] == "timeout" and event.detail["script"] == "forever.py"


def test_scripts_come_from_the_callers_workspace_only(platform: Platform) -> None:
    platform.write("bob", "tool.py", "print('bob')\n")
    with pytest.raises(InvalidInput, match=r"`\.\.` component"):
        platform.run(platform.alice, "../bob/tool.py")
    with pytest.raises(InvalidInput, match="absolute"):
        platform.run(platform.alice, str(platform.settings.workspaces_dir / "bob" / "tool.py"))
    alice = Workspace.of(platform.settings.workspaces_dir, "alice")
    (alice.root / "bobs-tool.py").symlink_to(platform.settings.workspaces_dir / "bob" / "tool.py")
    with pytest.raises(PermissionDenied, match="outside your workspace"):
        platform.run(platform.alice, "bobs-tool.py")
    with pytest.raises(NotFound):
        platform.run(platform.alice, "missing.py")
    with pytest.raises(InvalidInput, match="NUL"):
        platform.run(platform.alice, "mean.py", "a\0b")
    assert "bobs-tool.py" in [entry.path for entry in list_entries(alice)]


def test_runs_and_the_gateways_file_commands_keep_apart(platform: Platform) -> None:
    """A running script could plant a link where the SSH gateway's CLI is about to read or write by path."""
    workspaces = platform.settings.workspaces_dir
    platform.write("alice", "hello.py", "print('hello')\n")
    platform.write("bob", "hello.py", "print('hello')\n")
    with workspace_lock(workspaces, "alice", shared=False):  # the gateway's `files get` of alice, say
        with pytest.raises(Conflict, match="SSH command of yours"):
            platform.run(platform.alice, "hello.py")
        assert platform.run(platform.bob, "hello.py") == (0, "hello\n", "")  # another workspace: no matter
    assert platform.run(platform.alice, "hello.py") == (0, "hello\n", "")
    runs = workspace_lock(workspaces, "alice", shared=True), workspace_lock(workspaces, "alice", shared=True)
    with (  # two runs share the workspace; the gateway's file commands wait for them to end
        runs[0],
        runs[1],
        pytest.raises(Conflict, match="a script of yours is running"),
        workspace_lock(workspaces, "alice", shared=False),
    ):
        pass
