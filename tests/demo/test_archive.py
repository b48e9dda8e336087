"""The demo archive generator, on real files: CF/GDS 2.0 shape, plausible values, swath geometry, determinism,
idempotence and crash safety."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from nephelae.demo.archive import DemoDataset, build_demo_archive
from nephelae.demo.weather import saturation_specific_humidity
from tests.support.real_data import real_files

DAYS = 3
START = dt.date(2020, 1, 1)
CORE_L4_VARIABLES = {"analysed_sst", "analysis_error", "sea_ice_fraction", "mask"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DemoDataset]]:
    root = tmp_path_factory.mktemp("archive")
    return root, build_demo_archive(root, start=START, days=DAYS)


@pytest.fixture(scope="module")
def datasets(archive: tuple[Path, list[DemoDataset]]) -> dict[str, DemoDataset]:
    return {dataset.id: dataset for dataset in archive[1]}


def _files(dataset: DemoDataset) -> list[Path]:
    return sorted(dataset.root.glob(dataset.pattern))


def _open(path: Path, **options: Any) -> xr.Dataset:
    return xr.open_dataset(path, engine="netcdf4", decode_timedelta=False, **options)


@pytest.fixture(scope="module")
def l4(datasets: dict[str, DemoDataset]) -> Iterator[xr.Dataset]:
    with _open(_files(datasets["demo-l4-sst"])[0]) as dataset:
        yield dataset.load()


@pytest.fixture(scope="module")
def swaths(datasets: dict[str, DemoDataset]) -> list[xr.Dataset]:
    loaded = []
    for path in _files(datasets["demo-l2p-sst"]):
        with _open(path) as dataset:
            loaded.append(dataset.load())
    return loaded


def test_describes_three_datasets_with_their_files(archive: tuple[Path, list[DemoDataset]]) -> None:
    root, described = archive
    assert [dataset.id for dataset in described] == ["demo-l4-sst", "demo-l2p-sst", "demo-surface-met"]
    for dataset in described:
        assert dataset.root == root / dataset.id
        assert dataset.title and dataset.description and dataset.variables
        assert len(_files(dataset)) == dataset.files
    assert [dataset.files for dataset in described] == [DAYS, 5 * DAYS, DAYS]


def test_layout_and_gds2_file_names(datasets: dict[str, DemoDataset]) -> None:
    first_l4 = _files(datasets["demo-l4-sst"])[0]
    assert first_l4.relative_to(datasets["demo-l4-sst"].root).parts == (
        "2020",
        "001",
        "20200101120000-NEPHELAE-L4_GHRSST-SSTfnd-DEMO-GLOB-v02.0-fv01.0.nc",
    )
    for path in _files(datasets["demo-l2p-sst"]):
        assert path.name.endswith("-NEPHELAE-L2P_GHRSST-SSTskin-DEMOSAT-v02.0-fv01.0.nc")
        assert path.parent.name == dt.datetime.strptime(path.name[:8], "%Y%m%d").strftime("%j")


def test_l4_sst_is_plausible_over_water_and_missing_over_land(l4: xr.Dataset) -> None:
    sst, mask = l4.analysed_sst[0].values, l4["mask"][0].values.astype(int)
    land = (mask & 2) > 0
    assert np.isnan(sst[land]).all()
    assert np.isfinite(sst[~land]).all()
    assert np.nanmin(sst) >= 271.0 and np.nanmax(sst) <= 305.0
    assert 295.0 < np.nanmean(sst[np.abs(l4.lat.values) < 10]) < 303.0  # warm tropics
    assert np.isfinite(l4.analysis_error[0].values[~land]).all()


def test_l4_land_fraction_and_sea_ice_are_plausible(l4: xr.Dataset) -> None:
    land = (l4["mask"][0].values.astype(int) & 2) > 0
    weights = np.broadcast_to(np.cos(np.radians(l4.lat.values))[:, None], land.shape)
    assert 0.20 < np.average(land, weights=weights) < 0.40
    ice = l4.sea_ice_fraction[0].values
    arctic = l4.lat.values > 75
    assert np.nanmean(ice[arctic]) > 0.5  # January: the Arctic is frozen
    assert np.nanmax(ice[np.abs(l4.lat.values) < 40]) == 0
    assert (((l4["mask"][0].values.astype(int) & 8) > 0) == (ice > 0.15)).sum() > 0


def test_l4_follows_cf_and_gds2(l4: xr.Dataset) -> None:
    sst = l4.analysed_sst
    assert sst.dims == ("time", "lat", "lon") and l4.sizes == {"time": 1, "lat": 720, "lon": 1440}
    assert sst.attrs["units"] == "kelvin" and sst.attrs["standard_name"] == "sea_surface_foundation_temperature"
    assert sst.encoding["dtype"] == np.int16
    assert (sst.encoding["scale_factor"], sst.encoding["add_offset"], sst.encoding["_FillValue"]) == (
        0.01,
        273.15,
        -32768,
    )
    assert sst.encoding["zlib"] and sst.encoding["complevel"] == 4
    assert l4.analysis_error.attrs["standard_name"] == "sea_surface_foundation_temperature standard_error"
    assert l4.sea_ice_fraction.encoding["dtype"] == np.int8
    assert list(l4["mask"].attrs["flag_masks"]) == [1, 2, 4, 8]
    assert l4["mask"].attrs["flag_meanings"] == "water land optional_lake_surface sea_ice"
    assert l4.lat.values[0] == pytest.approx(-89.875) and l4.lon.values[-1] == pytest.approx(179.875)
    assert l4.lat.dtype == np.float32 and l4.lat.attrs["axis"] == "Y" and l4.lon.attrs["units"] == "degrees_east"
    assert l4.time.encoding["units"] == "seconds since 1981-01-01 00:00:00"
    assert l4.time.encoding["dtype"] == np.int32 and l4.time.attrs["axis"] == "T"
    assert l4.time.values[0] == np.datetime64("2020-01-01T12:00:00")


def test_l4_global_attributes(l4: xr.Dataset) -> None:
    attrs = l4.attrs
    assert attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    assert attrs["gds_version_id"] == "2.0" and attrs["processing_level"] == "L4"
    assert attrs["cdm_data_type"] == "grid" and attrs["institution"] == "Nephelae demo"
    assert attrs["time_coverage_start"] == "20200101T000000Z" and attrs["time_coverage_end"] == "20200102T000000Z"
    assert attrs["geospatial_lat_resolution"] == 0.25 and attrs["northernmost_latitude"] == 89.875
    assert "synthetic" in attrs["comment"].lower()
    for key in ("title", "summary", "id", "naming_authority", "source", "platform", "sensor", "license", "uuid"):
        assert attrs[key], key
    for key in ("netcdf_version_id", "date_created", "start_time", "stop_time", "product_version"):
        assert attrs[key], key


def test_l4_matches_a_real_ghrsst_l4_file(l4: xr.Dataset) -> None:
    """Realism: the core of JPL MUR25 (dims, names, packed dtype, attribute and encoding keys) is reproduced."""
    with _open(real_files("ghrsst-l4-mur25-glob", "*.nc")[0]) as real:
        assert set(real.data_vars) >= CORE_L4_VARIABLES and set(l4.data_vars) >= CORE_L4_VARIABLES
        for name in CORE_L4_VARIABLES:
            assert l4[name].dims == real[name].dims, name
            assert l4[name].encoding["dtype"] == real[name].encoding["dtype"], name
        ours, theirs = l4.analysed_sst, real.analysed_sst
        for key in ("units", "standard_name", "long_name"):
            assert ours.attrs[key] == theirs.attrs[key], key
        for key in ("scale_factor", "add_offset", "_FillValue"):
            assert key in ours.encoding and key in theirs.encoding, key
        assert ours.encoding["_FillValue"] == theirs.encoding["_FillValue"]
        assert l4.lat.dtype == real.lat.dtype and l4.lon.dtype == real.lon.dtype
        assert l4.time.encoding["dtype"] == real.time.encoding["dtype"]
        assert {"gds_version_id", "processing_level", "time_coverage_start", "uuid"} <= set(real.attrs) & set(l4.attrs)


def test_l2p_granules_follow_gds2(swaths: list[xr.Dataset]) -> None:
    assert len(swaths) == 5 * DAYS
    granule = swaths[0]
    assert granule.sea_surface_temperature.dims == ("time", "nj", "ni")
    assert granule.lat.dims == ("nj", "ni") and granule.lat.dtype == np.float32
    sst = granule.sea_surface_temperature
    assert sst.attrs["standard_name"] == "sea_surface_skin_temperature" and sst.attrs["units"] == "kelvin"
    assert sst.encoding["dtype"] == np.int16 and sst.encoding["scale_factor"] == 0.01
    quality = granule.quality_level
    assert quality.attrs["flag_meanings"].split() == [
        "no_data",
        "bad_data",
        "worst_quality",
        "low_quality",
        "acceptable_quality",
        "best_quality",
    ]
    assert granule.sst_dtime.attrs["units"] == "seconds"
    assert granule.sses_bias.encoding["dtype"] == np.int8
    assert granule.attrs["processing_level"] == "L2P" and granule.attrs["cdm_data_type"] == "swath"
    assert granule.attrs["gds_version_id"] == "2.0" and granule.attrs["platform"] == "DEMOSAT-1"
    start = dt.datetime.strptime(granule.attrs["time_coverage_start"], "%Y%m%dT%H%M%SZ")
    end = dt.datetime.strptime(granule.attrs["time_coverage_end"], "%Y%m%dT%H%M%SZ")
    assert start == granule.time.values[0].astype("datetime64[s]").item()
    assert dt.timedelta(minutes=5) < end - start < dt.timedelta(minutes=15)
    assert end - start == dt.timedelta(seconds=int(granule.sst_dtime.values.max()))


def test_l2p_values_are_plausible_and_clouded(swaths: list[xr.Dataset]) -> None:
    for granule in swaths:
        sst, quality = granule.sea_surface_temperature.values, granule.quality_level.values
        assert np.isnan(sst[quality < 2]).all()
        if np.isfinite(sst).any():
            assert np.nanmin(sst) > 269.0 and np.nanmax(sst) < 310.0
    quality = np.concatenate([granule.quality_level.values.ravel() for granule in swaths])
    assert set(np.unique(quality[np.isfinite(quality)])) == {0, 1, 2, 3, 4, 5}
    assert 0.05 < np.mean(quality == 1) < 0.5  # clouds


def test_l2p_skin_sst_follows_the_l4_analysis(swaths: list[xr.Dataset], l4: xr.Dataset) -> None:
    granule = next(g for g in swaths if g.attrs["time_coverage_start"].startswith("20200101"))
    good = granule.quality_level.values[0] >= 4
    lat, lon = granule.lat.values[good], granule.lon.values[good]
    rows = np.clip(((lat + 90) / 0.25).astype(int), 0, 719)
    cols = ((lon + 180) / 0.25).astype(int) % 1440
    difference = granule.sea_surface_temperature.values[0][good] - l4.analysed_sst.values[0][rows, cols]
    assert good.sum() > 1000
    assert abs(np.nanmean(difference)) < 0.5 and np.nanstd(difference) < 0.6


def _crosses_antimeridian(granule: xr.Dataset) -> bool:
    lon = granule.lon.values
    step = np.abs((np.diff(lon, axis=1) + 180) % 360 - 180)  # contiguous scan lines: small steps modulo 360
    return bool(lon.max() > 170 and lon.min() < -170 and step.max() < 1.0 and np.abs(granule.lat.values).max() < 80)


def test_l2p_has_antimeridian_crossings_every_day(swaths: list[xr.Dataset]) -> None:
    crossing = [granule for granule in swaths if _crosses_antimeridian(granule)]
    assert {granule.attrs["time_coverage_start"][:8] for granule in crossing} == {"20200101", "20200102", "20200103"}
    for granule in crossing:
        assert granule.attrs["geospatial_lon_min"] > granule.attrs["geospatial_lon_max"]  # ACDD: west > east
        assert granule.attrs["geospatial_lon_min"] > 90 and granule.attrs["geospatial_lon_max"] < -90


def test_l2p_has_polar_passes(swaths: list[xr.Dataset]) -> None:
    north = [g for g in swaths if g.lat.values.max() > 80]
    south = [g for g in swaths if g.lat.values.min() < -80]
    assert north and south
    for granule in north + south:
        assert np.abs(granule.lat.values).max() <= 90
        assert granule.attrs["geospatial_lat_max"] > 80 or granule.attrs["geospatial_lat_min"] < -80


def test_surface_meteorology_is_consistent(datasets: dict[str, DemoDataset]) -> None:
    with _open(_files(datasets["demo-surface-met"])[0]) as met:
        met = met.load()
    u, v, speed = met.eastward_wind.values, met.northward_wind.values, met.wind_speed.values
    np.testing.assert_allclose(speed, np.hypot(u, v), atol=0.006)
    assert 3.5 < speed.mean() < 10.0 and speed.max() < 40.0
    temperature, humidity = met.air_temperature.values, met.specific_humidity.values
    assert temperature.min() > 200.0 and temperature.max() < 320.0
    assert (humidity > 0).all() and (humidity < saturation_specific_humidity(temperature)).all()
    assert met.wind_speed.attrs["standard_name"] == "wind_speed" and met.wind_speed.attrs["units"] == "m s-1"
    assert met.specific_humidity.attrs["units"] == "kg kg-1" and met.air_temperature.attrs["units"] == "K"
    assert float(met.height_10m) == 10.0 and met.height_10m.attrs["standard_name"] == "height"
    assert "height_10m" in met.eastward_wind.encoding["coordinates"]
    assert met.attrs["Conventions"] == "CF-1.8, ACDD-1.3" and met.attrs["time_coverage_start"] == "20200101T000000Z"


def test_trades_blow_from_the_east(datasets: dict[str, DemoDataset]) -> None:
    with _open(_files(datasets["demo-surface-met"])[0]) as met:
        zonal = met.eastward_wind[0].mean("lon")
        assert float(zonal.sel(lat=slice(-20, -8)).mean()) < -2 and float(zonal.sel(lat=slice(8, 20)).mean()) < -2
        assert float(zonal.sel(lat=slice(-55, -40)).mean()) > 4  # the roaring forties


def test_same_seed_same_values_other_seed_other_values(tmp_path: Path) -> None:
    first, second, other = (tmp_path / name for name in ("first", "second", "other"))
    for root, seed in ((first, 7), (second, 7), (other, 8)):
        build_demo_archive(root, start=dt.date(2021, 6, 30), days=1, seed=seed)
    names = sorted(path.relative_to(first) for path in first.rglob("*.nc"))
    assert names == sorted(path.relative_to(second) for path in second.rglob("*.nc"))
    for name in names:
        with _open(first / name, mask_and_scale=False) as one, _open(second / name, mask_and_scale=False) as two:
            for variable in one.variables:
                np.testing.assert_array_equal(one[variable].values, two[variable].values, err_msg=str(variable))
            assert one.attrs["uuid"] == two.attrs["uuid"]
    l4_name = next(name for name in names if "L4_GHRSST" in str(name))
    with _open(first / l4_name) as one, _open(other / l4_name) as two:
        assert not np.array_equal(one.analysed_sst.values, two.analysed_sst.values, equal_nan=True)
        assert one.attrs["uuid"] != two.attrs["uuid"]


def test_a_day_does_not_depend_on_the_period_built(archive: tuple[Path, list[DemoDataset]], tmp_path: Path) -> None:
    """Eddies, storms and orbits are functions of (seed, time): a build starting later agrees where they overlap."""
    root, _ = archive
    build_demo_archive(tmp_path, start=START + dt.timedelta(days=2), days=1)
    names = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*.nc"))
    assert len(names) == 7
    for name in names:
        with _open(root / name, mask_and_scale=False) as one, _open(tmp_path / name, mask_and_scale=False) as two:
            for variable in one.data_vars:
                np.testing.assert_array_equal(one[variable].values, two[variable].values, err_msg=str(variable))


def test_rebuilding_writes_nothing_and_reports_every_file(archive: tuple[Path, list[DemoDataset]]) -> None:
    root, described = archive
    stamps = {path: path.stat().st_mtime_ns for path in root.rglob("*.nc")}
    calls: list[tuple[str, int, int]] = []
    again = build_demo_archive(root, start=START, days=DAYS, progress=lambda *call: calls.append(call))
    assert again == described
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*.nc")} == stamps
    total = sum(dataset.files for dataset in described)
    assert [done for _, done, _ in calls] == list(range(1, total + 1))
    assert {label for label, _, _ in calls} == {dataset.id for dataset in described}
    assert {count for _, _, count in calls} == {total}


def test_extending_the_period_writes_only_the_new_days(tmp_path: Path) -> None:
    build_demo_archive(tmp_path, start=dt.date(2020, 3, 1), days=1)
    stamps = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*.nc")}
    described = build_demo_archive(tmp_path, start=dt.date(2020, 3, 1), days=2)
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    assert len(list(tmp_path.rglob("*.nc"))) == sum(dataset.files for dataset in described) == 2 * 7


def test_a_crash_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_to_netcdf = xr.Dataset.to_netcdf
    written: list[Path] = []

    def crash_on_third(self: xr.Dataset, path: Path, *args: Any, **kwargs: Any) -> Any:
        result = real_to_netcdf(self, path, *args, **kwargs)
        written.append(Path(path))
        if len(written) == 3:
            raise OSError("disk full")  # after the bytes are out, before the rename
        return result

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash_on_third)
    with pytest.raises(OSError, match="disk full"):
        build_demo_archive(tmp_path, start=START, days=1)
    assert all(path.name.startswith(".") and path.name.endswith(".tmp") for path in written)
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and path.name.endswith(".tmp")]
    finished = list(tmp_path.rglob("*.nc"))
    assert written[2].name.removeprefix(".").split(".nc.")[0] + ".nc" not in {path.name for path in finished}
    for path in finished:  # whatever is under a final name is complete
        with _open(path) as dataset:
            dataset.load()
    monkeypatch.undo()
    (tmp_path / "demo-l4-sst" / ".stale.nc.1234.tmp").write_bytes(b"half a file")
    described = build_demo_archive(tmp_path, start=START, days=1)
    assert len(list(tmp_path.rglob("*.nc"))) == sum(dataset.files for dataset in described) == 7
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and not path.name.endswith(".nc")]


def test_no_temporary_file_after_a_build(archive: tuple[Path, list[DemoDataset]]) -> None:
    root, _ = archive
    assert [path for path in root.rglob("*") if path.is_file() and path.suffix != ".nc"] == []


def test_days_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="days"):
        build_demo_archive(tmp_path, days=0)
