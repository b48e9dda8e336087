"""Running one campaign task as a Dask worker does: built-in, sandboxed script and command processors, on real files.

Each test builds `TaskRequest`s by hand over a small demo archive and checks the file written under the task's key
against an independent netCDF4 + numpy reading of the inputs, the provenance, the log, and that nothing is left
behind: no partial output under the final name, no temporary file, no staged file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import secrets
import shutil
import socket
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

from nephelae.campaigns.execute import close_sandboxes, run_task
from nephelae.campaigns.outputs import conventions, new_staging, output_path, publish
from nephelae.campaigns.tasks import Limits, TaskRequest, TaskResult
from nephelae.demo.archive import build_demo_archive
from tests.sandbox.conftest import bubblewrap  # noqa: F401  # bwrap installed when missing (session, autouse)
from tests.support.real_data import real_files

SCRIPT = """\
import os

import dask.array as da
import xarray as xr


def process(inputs, parameters):
    sst = inputs["sst"]["analysed_sst"]
    print(f"averaging {sst.sizes['time']} fields")
    result = (sst - parameters["offset"]).mean("time").to_dataset(name="warmth")
    result["warmth"].attrs["units"] = "K"
    result.attrs["worker_pid"] = os.getpid()
    return result


def fails(inputs, parameters):
    return check(inputs["sst"])


def check(dataset):
    raise ValueError(f"no usable SST in {dataset.sizes['time']} fields")


def not_a_dataset(inputs, parameters):
    return {"sst": 1}


def spins(inputs, parameters):
    while True:
        pass


def vandal(inputs, parameters):
    with open(os.path.join(parameters["target"], "defaced.nc"), "w") as file:
        file.write("gone")
    return inputs["sst"]


def breaks_while_writing(inputs, parameters):
    field = inputs["sst"]["analysed_sst"]
    broken = da.map_blocks(_explode, field.data, dtype=field.dtype)
    return xr.Dataset({"field": field, "broken": field.copy(data=broken)})


def dies_while_writing(inputs, parameters):
    field = inputs["sst"]["analysed_sst"]
    broken = da.map_blocks(_die, field.data, dtype=field.dtype)
    return xr.Dataset({"field": field, "broken": field.copy(data=broken)})


def _explode(block):
    if block.size == 0:  # dask's trial call on an empty block, when the graph is built
        return block
    print("being written:", *os.listdir(".."), flush=True)  # the task runs in a scratch directory beside its output
    raise RuntimeError("disk on fire")


def _die(block):
    if block.size == 0:
        return block
    print("being written:", *os.listdir(".."), flush=True)
    os._exit(3)
"""
ORDINALS = itertools.count()
CONVERT = """\
import sys
import xarray as xr
with xr.open_dataset(sys.argv[1]) as dataset:
    dataset[["analysed_sst"]].isel(lat=slice(0, 10)).to_netcdf(sys.argv[2])
print("converted", sys.argv[1])
"""


@dataclass(frozen=True)
class Home:
    """A campaign's directories: alice's workspace, the output dataset's root, logs and scratch."""

    root: Path
    archive: Path

    @property
    def workspace(self) -> Path:
        return self.root / "workspaces" / "alice"

    @property
    def output(self) -> Path:
        return self.root / "datasets" / "alice-derived"

    def l4(self, count: int = 3) -> list[str]:
        return sorted(str(path) for path in (self.archive / "demo-l4-sst").glob("**/*.nc"))[:count]

    def request(
        self,
        processor: str | dict[str, list[str]],
        *,
        inputs: dict[str, list[str]] | None = None,
        parameters: dict[str, Any] | None = None,
        limits: Limits | None = None,
        output_format: str = "netcdf",
    ) -> TaskRequest:
        ordinal = next(ORDINALS)
        return TaskRequest(
            campaign_id=7,
            campaign_name="test-campaign",
            ordinal=ordinal,
            run=1,
            key=secrets.token_hex(32),
            owner="alice",
            inputs=inputs if inputs is not None else {"sst": self.l4()},
            processor=processor,
            processor_identity=f"{json.dumps(processor)}@test",
            parameters=parameters or {},
            output_dir=str(self.output),
            output_format=output_format,
            workspace=str(self.workspace),
            readonly_roots=(str(self.archive),),
            scratch_dir=str(self.root / "campaigns" / "7" / "scratch" / str(ordinal)),
            log_path=str(self.root / "campaigns" / "7" / "logs" / f"{ordinal}.log"),
            limits=limits or Limits(),
        )


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    root.chmod(0o755)  # an archive is readable by all (the sandbox's own uid included); mktemp makes it 0700
    build_demo_archive(root, days=3)
    return root


@pytest.fixture
def home(tmp_path: Path, archive: Path) -> Iterator[Home]:
    home = Home(tmp_path, archive)
    home.workspace.mkdir(parents=True)
    (home.workspace / "anomaly.py").write_text(SCRIPT)
    yield home
    close_sandboxes()


def l4_field(paths: list[str], name: str = "analysed_sst") -> np.ndarray:
    """The unpacked values of `name` in each file, stacked along time: netCDF4 and numpy only, no xarray."""
    fields = []
    for path in paths:
        with netCDF4.Dataset(path) as nc:
            fields.append(np.ma.filled(nc[name][:].astype(np.float64), np.nan))
    return np.concatenate(fields)


def nanmean(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # land: no value at any time
        return np.nanmean(values, axis=0)


def written(result: TaskResult, request: TaskRequest) -> Path:
    """The task's one output: at its key's path, alone in its directory (no temporary file left), complete."""
    assert result.error is None, f"{result.error}\n{result.traceback}"
    (output,) = result.outputs
    final = output_path(request.output_dir, request.key)
    assert output.path == str(final) and output.size == final.stat().st_size
    assert list(final.parent.iterdir()) == [final]
    return final


def nothing_left(request: TaskRequest) -> None:
    """No output, temporary or staged file of the task anywhere under the output dataset's root."""
    leftovers = [path for path in Path(request.output_dir).rglob("*") if request.key in path.name]
    assert leftovers == []


def check_provenance(attrs: dict[str, Any], request: TaskRequest) -> None:
    assert attrs["Conventions"].split(", ")[0] == "CF-1.8"
    assert attrs["nephelae_campaign"] == "7" and attrs["nephelae_campaign_name"] == "test-campaign"
    assert attrs["nephelae_processor"] == request.processor_identity
    assert json.loads(attrs["nephelae_parameters"]) == request.parameters
    granules = {alias: [Path(path).name for path in paths] for alias, paths in request.inputs.items()}
    assert json.loads(attrs["nephelae_input_granules"]) == granules
    assert attrs["nephelae_task_key"] == request.key
    assert {"nephelae", "xarray", "numpy", "netCDF4"} <= set(json.loads(attrs["nephelae_software"]))
    assert request.key in attrs["history"].splitlines()[-1]
    created = dt.datetime.strptime(attrs["date_created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=5)


def test_builtin_monthly_mean_of_three_granules(home: Home) -> None:
    request = home.request("nephelae.processors:monthly_mean")
    result = run_task(request)
    final = written(result, request)
    assert result.outputs[0].reused is False and result.worker == f"{socket.gethostname()}:{os.getpid()}"
    with xr.open_dataset(final) as output:
        np.testing.assert_allclose(output["analysed_sst"].values[0], nanmean(l4_field(home.l4())), rtol=1e-12)
        assert "mask" not in output  # flags are not averaged
        assert output["analysed_sst"].attrs["units"] == "kelvin"
        assert output["analysed_sst"].attrs["cell_methods"] == "time: mean"
        assert output["analysed_sst"].encoding["zlib"] is True
        assert output["time"].values[0] == np.datetime64("2020-01-02T12:00")
        assert output["time_bnds"].values.tolist() == [
            [np.datetime64(f"2020-01-0{d}T12:00", "ns").astype(int) for d in (1, 3)]
        ]
        check_provenance(output.attrs, request)
    log = Path(request.log_path).read_text()
    assert "monthly_mean" in log and "done in" in log


def test_on_a_dask_worker_the_result_names_the_worker(home: Home) -> None:
    request = home.request("nephelae.processors:monthly_mean", inputs={"sst": home.l4(2)})
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        result = client.submit(run_task, request, pure=False).result()
        assert [result.worker] == list(client.scheduler_info()["workers"])
    with xr.open_dataset(written(result, request)) as output:
        np.testing.assert_allclose(output["analysed_sst"].values[0], nanmean(l4_field(home.l4(2))), rtol=1e-12)


def test_a_rerun_reuses_the_output_without_touching_it(home: Home) -> None:
    request = home.request("nephelae.processors:time_mean", inputs={"sst": home.l4(1)})
    final = written(run_task(request), request)
    before = final.stat().st_mtime_ns
    again = run_task(request)
    assert again.error is None and again.outputs[0].reused is True and again.outputs[0].path == str(final)
    assert final.stat().st_mtime_ns == before
    log = Path(request.log_path).read_text()
    assert log.count("===== ") == 2 and "already written by an earlier run" in log


def test_bad_parameters_of_a_builtin_are_not_retried(home: Home) -> None:
    request = home.request("nephelae.processors:sst_anomaly", parameters={"reference": "climatology"})
    result = run_task(request)
    assert result.retryable is False and result.outputs == ()
    assert result.error == (
        "sst_anomaly: parameter reference must be 'group_mean' or a temperature in kelvin, not 'climatology'"
    )
    nothing_left(request)
    unknown = run_task(home.request("nephelae.processors:bin_everything"))
    assert unknown.retryable is False and "has no processor 'bin_everything'" in (unknown.error or "")


@pytest.mark.parametrize("processor", ["nephelae.processors:monthly_mean", "anomaly.py:process"])
def test_zarr_outputs_are_stores_published_once(home: Home, processor: str) -> None:
    parameters = {"offset": 273.15} if processor.startswith("anomaly") else {}
    request = home.request(processor, parameters=parameters, output_format="zarr")
    result = run_task(request)
    assert result.error is None, f"{result.error}\n{result.traceback}"
    final = output_path(request.output_dir, request.key, "zarr")
    assert result.outputs[0].path == str(final) and final.is_dir() and (final / ".zmetadata").is_file()
    assert list(final.parent.iterdir()) == [final]  # no temporary store or NetCDF copy left
    assert result.outputs[0].size == sum(path.stat().st_size for path in final.rglob("*") if path.is_file())
    with xr.open_zarr(final) as output:
        name = "warmth" if parameters else "analysed_sst"
        expected = nanmean(l4_field(home.l4())) - (273.15 if parameters else 0.0)
        np.testing.assert_allclose(output[name].values.squeeze(), expected, rtol=1e-6, atol=1e-5)
        check_provenance(output.attrs, request)
    before = {path: path.stat().st_mtime_ns for path in final.rglob("*")}
    again = run_task(request)
    assert again.outputs[0].reused is True
    assert {path: path.stat().st_mtime_ns for path in final.rglob("*")} == before


def test_a_second_store_for_the_same_key_is_dropped(home: Home, tmp_path: Path) -> None:
    final = home.output / "ab" / "abc.zarr"
    final.parent.mkdir(parents=True)
    first, second = (tmp_path / name for name in ("first", "second"))
    for store, value in ((first, 1.0), (second, 2.0)):
        xr.Dataset({"v": ("x", [value])}).to_zarr(store, zarr_format=2, consolidated=True)
    assert publish(first, final) is True
    assert publish(second, final) is False
    with xr.open_zarr(final) as published:
        assert published["v"].values.tolist() == [1.0]


def test_a_workspace_script_runs_sandboxed_in_a_reused_worker(home: Home) -> None:
    requests = [
        home.request("anomaly.py:process", parameters={"offset": 273.15}, inputs={"sst": home.l4(n)}) for n in (3, 2)
    ]
    pids = []
    for request in requests:
        with xr.open_dataset(written(run_task(request), request)) as output:
            expected = nanmean(l4_field(request.inputs["sst"]) - 273.15)
            np.testing.assert_allclose(output["warmth"].values, expected, rtol=1e-6)
            check_provenance(output.attrs, request)
            pids.append(output.attrs["worker_pid"])
        assert f"averaging {len(request.inputs['sst'])} fields" in Path(request.log_path).read_text()
    assert pids[0] == pids[1]  # one sandboxed Python for both tasks


def test_the_users_exception_comes_back_with_the_users_traceback(home: Home) -> None:
    request = home.request("anomaly.py:fails")
    result = run_task(request)
    assert result.error == "ValueError: no usable SST in 3 fields" and result.retryable is True
    traceback = result.traceback or ""
    assert (
        f'File "{home.workspace / "anomaly.py"}"' in traceback and "in fails" in traceback and "in check" in traceback
    )
    assert "nephelae/campaigns" not in traceback and "nephelae/sandbox" not in traceback
    assert traceback in Path(request.log_path).read_text()
    nothing_left(request)


def test_a_result_that_is_not_a_dataset_is_not_retried(home: Home) -> None:
    result = run_task(home.request("anomaly.py:not_a_dataset"))
    assert result.retryable is False
    assert result.error == "not_a_dataset returned a builtins.dict, not an xarray.Dataset; return the dataset to write"


def test_a_script_outside_the_workspace_is_not_retried(home: Home) -> None:
    result = run_task(home.request("missing.py:process"))
    assert result.retryable is False and "missing.py is not a file of your workspace" in (result.error or "")


def test_a_runaway_task_times_out_and_the_next_one_runs(home: Home) -> None:
    limits = Limits(timeout_seconds=2)
    runaway = home.request("anomaly.py:spins", limits=limits)
    result = run_task(runaway)
    assert result.retryable is True
    assert (result.error or "").startswith("anomaly.py:spins did not finish within 2 s; it was killed")
    assert 2 <= result.seconds < 30
    nothing_left(runaway)
    after = home.request("anomaly.py:process", parameters={"offset": 0}, inputs={"sst": home.l4(1)}, limits=limits)
    written(run_task(after), after)


def test_a_script_cannot_write_into_the_archive(home: Home) -> None:
    target = home.archive / "demo-l4-sst"
    result = run_task(home.request("anomaly.py:vandal", parameters={"target": str(target)}))
    assert "Read-only file system" in (result.error or "")
    assert not (target / "defaced.nc").exists()


@pytest.mark.parametrize("how", ["breaks_while_writing", "dies_while_writing"])
def test_a_crash_while_writing_leaves_no_file(home: Home, how: str) -> None:
    request = home.request(f"anomaly.py:{how}")
    result = run_task(request)
    assert result.retryable is True and result.outputs == ()
    expected = (
        "RuntimeError: disk on fire"
        if how == "breaks_while_writing"
        else "anomaly.py:dies_while_writing: the sandboxed worker exited with status 3"
    )
    assert expected in (result.error or "")
    assert f"{request.key}.nc" in Path(request.log_path).read_text().split("being written:")[1]  # a partial file
    nothing_left(request)
    after = home.request("anomaly.py:process", parameters={"offset": 0}, inputs={"sst": home.l4(1)})
    written(run_task(after), after)  # the same cached worker (or its replacement) goes on


@pytest.mark.parametrize("processor", ["nephelae.processors:time_mean", "anomaly.py:process"])
def test_concurrent_duplicates_leave_one_intact_output(home: Home, processor: str) -> None:
    request = home.request(processor, parameters={"offset": 1.0} if "anomaly" in processor else {})
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run_task, [request, request]))
    assert sorted(result.outputs[0].reused for result in results) == [False, True]
    final = written(results[0], request)
    name = "warmth" if "anomaly" in processor else "analysed_sst"
    expected = nanmean(l4_field(home.l4()) - request.parameters.get("offset", 0.0))
    with xr.open_dataset(final) as output:
        np.testing.assert_allclose(output[name].values.reshape(expected.shape), expected, rtol=1e-6)
    assert not list(Path(request.output_dir).glob(".staging/*/*"))


def test_publishing_twice_keeps_the_first_file(tmp_path: Path) -> None:
    final = tmp_path / "ab" / "abc.nc"
    final.parent.mkdir()
    first, second = final.with_name(".abc.1.tmp"), final.with_name(".abc.2.tmp")
    first.write_text("first")
    second.write_text("second")
    assert publish(first, final) is True
    assert publish(second, final) is False
    assert final.read_text() == "first"


def test_staging_directories_of_dead_processes_are_removed(tmp_path: Path) -> None:
    orphan = tmp_path / ".staging" / f"{socket.gethostname()}-999999999-0a1b2c3d"
    (orphan / "half.nc").parent.mkdir(parents=True)
    (orphan / "half.nc").write_text("partial")
    elsewhere = tmp_path / ".staging" / "another-host-999999999-0a1b2c3d"
    elsewhere.mkdir()
    live = new_staging(tmp_path)
    assert live.parent == tmp_path / ".staging" and live.name.startswith(f"{socket.gethostname()}-{os.getpid()}-")
    assert not orphan.exists() and elsewhere.exists()  # another host's process may still be alive
    assert new_staging(tmp_path) != live and live.exists()


def test_conventions_name_cf_1_8_and_keep_the_others() -> None:
    assert conventions("") == "CF-1.8"
    assert conventions("CF-1.6, ACDD-1.3") == "CF-1.8, ACDD-1.3"
    assert conventions("CF-1.8 ACDD-1.3") == "CF-1.8, ACDD-1.3"


def test_a_command_converts_a_granule_in_the_sandbox(home: Home) -> None:
    granule = home.l4(1)
    request = home.request({"command": ["python3", "-c", CONVERT, "{input.sst}", "{output}"]}, inputs={"sst": granule})
    final = written(run_task(request), request)
    with xr.open_dataset(final) as output:
        np.testing.assert_allclose(output["analysed_sst"].values, l4_field(granule)[:, :10], rtol=1e-12)
        check_provenance(output.attrs, request)
        assert output.attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    assert f"converted {granule[0]}" in Path(request.log_path).read_text()
    assert not Path(request.scratch_dir).exists()  # created for the task, removed after it


def test_a_workspace_program_runs_from_the_workspace(home: Home) -> None:
    program = home.workspace / "bin" / "copy.sh"
    program.parent.mkdir()
    program.write_text('#!/bin/sh\nexec cp "$1" "$2"\n')
    program.chmod(0o755)
    request = home.request({"command": ["./bin/copy.sh", "{input.sst}", "{output}"]}, inputs={"sst": home.l4(1)})
    with xr.open_dataset(written(run_task(request), request)) as output:
        np.testing.assert_allclose(output["analysed_sst"].values, l4_field(home.l4(1)), rtol=1e-12)
        check_provenance(output.attrs, request)


@pytest.mark.parametrize(
    ("code", "message", "retryable"),
    [
        ("import sys; sys.exit('granule is corrupt')", "python3 exited with status 1: granule is corrupt", True),
        ("print('did nothing')", "python3 exited with status 0 but wrote no output file at {output}", False),
        ("import sys; open(sys.argv[1], 'w').write('text')", "is not a NetCDF file xarray can read", False),
    ],
    ids=["fails", "writes-nothing", "writes-garbage"],
)
def test_a_failing_command_reports_why(home: Home, code: str, message: str, retryable: bool) -> None:
    request = home.request({"command": ["python3", "-c", code, "{output}"]})
    result = run_task(request)
    assert message in (result.error or "") and result.retryable is retryable
    nothing_left(request)


def test_a_runaway_command_times_out(home: Home) -> None:
    request = home.request({"command": ["python3", "-c", "while True: pass"]}, limits=Limits(timeout_seconds=2))
    result = run_task(request)
    assert result.retryable is True and (result.error or "").startswith("python3 did not finish within 2 s")
    nothing_left(request)


def test_time_mean_of_real_ostia_files(home: Home, tmp_path: Path) -> None:
    archive = tmp_path / "ostia"
    archive.mkdir()
    copies = [str(shutil.copy(path, archive)) for path in real_files("ghrsst-l4-ostia-anom-glob", "*.nc")[:2]]
    request = home.request("nephelae.processors:time_mean", inputs={"sst": copies})
    request = TaskRequest(**{**request.__dict__, "readonly_roots": (str(archive),)})
    with xr.open_dataset(written(run_task(request), request)) as output:
        assert sorted(output.data_vars) == ["analysed_sst", "sst_anomaly", "time_bnds"]
        for name in ("analysed_sst", "sst_anomaly"):
            np.testing.assert_allclose(output[name].values[0], nanmean(l4_field(copies, name)), rtol=1e-6)
        assert output["analysed_sst"].attrs["standard_name"] == "sea_surface_foundation_temperature"
        check_provenance(output.attrs, request)
