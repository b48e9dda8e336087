"""`read_granule_metadata` over every real file of ../shared/data/real, the demo archive and damaged files.

Expected times and boxes come from SOURCES.md (which records what netCDF4 reads in each file) or are computed here
independently, with xarray or numpy over the full coordinate arrays, never by the reader's own functions.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import netCDF4
import numpy as np
import pytest
import xarray as xr

from nephelae.catalog.metadata import GranuleMetadata
from nephelae.catalog.reader import UnreadableGranule, read_granule_metadata
from tests.support.real_data import REAL_DATA, real_files

GLOBAL = (-180.0, -90.0, 180.0, 90.0)
ClassicFormat = Literal["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"]

# file under ../shared/data/real -> (time_start, time_end, box W,S,E,N or None when checked against the arrays).
# Grids: the time coordinate (and its bounds); swaths and tracks: the global attributes (see reader_time).
REAL: dict[str, tuple[str, str, tuple[float, float, float, float] | None]] = {
    "ghrsst-l4-ostia-anom-glob/20170605120000-UKMO-L4_GHRSST-SSTfnd-OSTIAanom-GLOB-v02.0-fv02.0.nc": (
        "2017-06-05T12:00:00",
        "2017-06-05T12:00:00",
        GLOBAL,
    ),
    "ghrsst-l4-ostia-anom-glob/20170606120000-UKMO-L4_GHRSST-SSTfnd-OSTIAanom-GLOB-v02.0-fv02.0.nc": (
        "2017-06-06T12:00:00",
        "2017-06-06T12:00:00",
        GLOBAL,
    ),
    "ghrsst-l4-ostia-anom-glob/20170607120000-UKMO-L4_GHRSST-SSTfnd-OSTIAanom-GLOB-v02.0-fv02.0.nc": (
        "2017-06-07T12:00:00",
        "2017-06-07T12:00:00",
        GLOBAL,
    ),
    "ghrsst-l4-ncei-avhrr-oi-glob/20151101120000-NCEI-L4_GHRSST-SSTblend-AVHRR_OI-GLOB-v02.0-fv02.0.nc": (
        "2015-11-01T00:00:00",
        "2015-11-02T00:00:00",
        GLOBAL,
    ),
    "ghrsst-l4-ncei-avhrr-oi-glob/20151102120000-NCEI-L4_GHRSST-SSTblend-AVHRR_OI-GLOB-v02.0-fv02.0.nc": (
        "2015-11-02T00:00:00",
        "2015-11-03T00:00:00",
        GLOBAL,
    ),
    "ghrsst-l4-mur25-glob/20181231090000-JPL-L4_GHRSST-SSTfnd-MUR25-GLOB-v02.0-fv04.2.nc": (
        "2018-12-31T09:00:00",
        "2018-12-31T09:00:00",
        GLOBAL,
    ),
    "ghrsst-l4-gos-oisst-blacksea/20160707000000-GOS-L4_GHRSST-SSTfnd-OISST_HR_REP-BLK-v02.0-fv01.0.nc": (
        "2016-07-07T00:00:00",
        "2016-07-07T00:00:00",
        (26.375, 38.75, 42.375, 48.75),
    ),
    "ghrsst-l2p-amsr2-remss/SS_AMSR2-L2B_v08_r38622-v02.0-fv01.0.nc": (
        "2019-08-21T17:48:11",
        "2019-08-21T19:27:01",
        None,
    ),
    "ghrsst-l2p-modis-terra-jpl/SS_MODIS_T-JPL-L2P-v2014.0.nc": ("2019-08-05T13:50:01", "2019-08-05T13:54:59", None),
    "ghrsst-l2p-viirs-npp-navo/SS_VIIRS_NPP-NAVO-L2P-v3.0.nc": ("2019-08-05T20:37:02", "2019-08-05T20:38:26", None),
    "ascat-l2-25km-osisaf-knmi/ascat_20150702_084200_metopa_45145_eps_o_250_2300_ovw.l2.nc": (
        "2015-07-02T08:42:00",
        "2015-07-02T10:23:56",
        None,
    ),
    "ascat-l2-25km-osisaf-knmi/ascat_20150702_102400_metopa_45146_eps_o_250_2300_ovw.l2.nc": (
        "2015-07-02T10:24:00",
        "2015-07-02T12:05:56",
        None,
    ),
    # The SSMIS time variable holds the pass number (1 ascending, 2 descending) labelled as hours: read as stored.
    "rss-ssmis-f16-daily/f16_ssmis_20200102v7.nc": ("2020-01-02T01:00:00", "2020-01-02T02:00:00", GLOBAL),
    "ccmp-v2-l3-winds/CCMP_Wind_Analysis_20160101_V02.0_L3.0_RSS.split.nc": (
        "2016-01-01T00:00:00",
        "2016-01-01T18:00:00",
        (0.0, -78.5, 21.75, -69.0),
    ),
    "smap-l2b-sss-jpl/SMAP_L2B_SSS_00865_20150331T163144_R13080.split.h5": (
        "2015-03-31T16:31:44",  # 2015-090, day-of-year
        "2015-03-31T18:10:11",
        None,
    ),
    "duacs-l4-sea-level/nrt_global_allsat_phy_l4_20190223_20190226.nc": (
        "2019-02-23T00:00:00",
        "2019-02-23T00:00:00",
        GLOBAL,
    ),
    "duacs-l4-sea-level/dt_med_allsat_phy_l4_2005T2.nc": (
        "2005-04-01T00:00:00",
        "2005-06-30T00:00:00",
        (-6.0, 30.0, 37.0, 46.0),
    ),
    # A time dimension but no time variable: the global attributes.
    "duacs-l4-sea-level/dt_med_allsat_phy_l4_20160515_20190101.nc": (
        "2016-05-15T00:00:00",
        "2016-05-15T00:00:00",
        (-6.0, 30.0, 37.0, 46.0),
    ),
    "duacs-l4-sea-level/dt_blacksea_allsat_phy_l4_20160707_20200801.nc": (
        "2016-07-07T00:00:00",
        "2016-07-07T00:00:00",
        (27.0, 40.0, 42.0, 47.0),
    ),
    # Daily maps whose time_coverage_* spans the two-week input window: the time variable wins.
    "imos-gsla-australia/IMOS_OceanCurrent_HV_20240101T000000Z_GSLA_FV02_NRT.nc": (
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00",
        (56.9, -60.1, -174.9, 10.1),  # 57..185 in 0..360 plus half a cell: crosses the antimeridian
    ),
    "imos-gsla-australia/IMOS_OceanCurrent_HV_20240102T000000Z_GSLA_FV02_NRT.nc": (
        "2024-01-02T00:00:00",
        "2024-01-02T00:00:00",
        (56.9, -60.1, -174.9, 10.1),
    ),
    "jason1-gdr/JA1_GPN_2PeP001_002_20020115_060706_20020115_070316.nc": (
        "2002-01-15T06:07:06.818984",
        "2002-01-15T07:03:16.384002",
        None,
    ),
    "sentinel6-p4-l2-hr/S6A_P4_2__HR_RED__NR_014_191_20210403T004056_20210403T005056_F00.nc": (
        "2021-04-03T00:40:56.526918",
        "2021-04-03T00:50:56.489200",
        None,
    ),
    "sentinel6-p4-l2-hr/S6A_P4_2__HR_RED__NR_014_192_20210403T005056_20210403T010056_F00.nc": (
        "2021-04-03T00:50:56.535556",
        "2021-04-03T01:00:56.449591",
        None,
    ),
}
SWATHS_AND_TRACKS = sorted(name for name, (_, _, box) in REAL.items() if box is None)
GRIDS_WITH_TIME = sorted(name for name, (_, _, box) in REAL.items() if box is not None and "20160515" not in name)


def _real(name: str) -> Path:
    product, filename = name.split("/")
    return real_files(product, filename)[0]


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _inside(lon: np.ndarray, lat: np.ndarray, meta: GranuleMetadata, tolerance: float = 0.0) -> np.ndarray:
    """Antimeridian-aware: a box with west > east covers [west, 180] and [-180, east]."""
    lon = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    west, east = meta.west - tolerance, meta.east + tolerance
    across = (lon >= west) | (lon <= east) if meta.west > meta.east else (lon >= west) & (lon <= east)
    return across & (lat >= meta.south - tolerance) & (lat <= meta.north + tolerance)


def _positions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every valid lat/lon of a swath or track file, read whole with xarray (Sentinel-6: group data_01)."""
    group = "data_01" if path.name.startswith("S6A") else None
    with xr.open_dataset(path, group=group, decode_times=False) as dataset:
        lat_name, lon_name = ("lat", "lon") if "lat" in dataset.variables else ("latitude", "longitude")
        lat = dataset[lat_name].values.astype(np.float64).ravel()
        lon = dataset[lon_name].values.astype(np.float64).ravel()
    valid = np.isfinite(lat) & np.isfinite(lon)
    return lon[valid], lat[valid]


def _coordinates(geometry: dict[str, Any]) -> Iterator[list[float]]:
    def walk(value: Any) -> Iterator[list[float]]:
        if isinstance(value[0], float | int):
            yield value
        else:
            for item in value:
                yield from walk(item)

    return walk(geometry["coordinates"])


def test_the_table_lists_every_file_of_sources_md() -> None:
    listed = set(re.findall(r"^## (\S+/\S+)$", (REAL_DATA / "SOURCES.md").read_text(), flags=re.MULTILINE))
    assert listed == set(REAL)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_file_time_box_and_json(name: str) -> None:
    start, end, box = REAL[name]
    meta = read_granule_metadata(_real(name))
    assert (meta.time_start, meta.time_end) == (_utc(start), _utc(end))
    assert meta.time_start.tzinfo is dt.UTC
    bounds = (meta.west, meta.south, meta.east, meta.north)
    assert all(type(value) is float for value in bounds)
    assert -180 <= meta.west <= 180 and -180 <= meta.east <= 180 and -90 <= meta.south <= meta.north <= 90
    if box is not None:
        assert bounds == pytest.approx(box, abs=1e-3)
        assert meta.footprint is None
    document = {"variables": [v.as_dict() for v in meta.variables], "attributes": meta.attributes}
    json.dumps(document | {"footprint": meta.footprint}, allow_nan=False)  # plain Python, no numpy, no NaN
    assert meta.variables and all(v.dims is not None and isinstance(v.dtype, str) for v in meta.variables)


@pytest.mark.parametrize("name", GRIDS_WITH_TIME)
def test_grid_time_is_the_time_coordinate_as_xarray_decodes_it(name: str) -> None:
    with xr.open_dataset(_real(name)) as dataset:
        time = next(dataset[n] for n in dataset.variables if str(n).lower() == "time")
        bounds = time.attrs.get("bounds") or time.encoding.get("bounds")
        values = [time.values.ravel(), *([dataset[bounds].values.ravel()] if bounds else [])]
        expected = [min(v.min() for v in values), max(v.max() for v in values)]
    meta = read_granule_metadata(_real(name))
    assert [np.datetime64(moment.replace(tzinfo=None), "ns") for moment in (meta.time_start, meta.time_end)] == expected


@pytest.mark.parametrize("name", SWATHS_AND_TRACKS)
def test_swath_and_track_boxes_hold_every_point_and_stay_tight(name: str) -> None:
    lon, lat = _positions(_real(name))
    meta = read_granule_metadata(_real(name))
    assert _inside(lon, lat, meta).all()
    assert meta.north - meta.south <= np.ptp(lat) + 2.0
    polar = np.abs(lat).max() > 88
    if polar:
        assert (meta.west, meta.east) == (-180.0, 180.0)
    else:
        wrapped = (lon + 180.0) % 360.0 - 180.0
        width = (meta.east - meta.west) % 360.0
        assert width <= np.ptp(wrapped) + 1.0  # none of these crosses the antimeridian
    assert meta.footprint is not None or polar
    if meta.footprint is not None:
        track = name.startswith(("jason1", "sentinel6"))
        assert meta.footprint["type"] in (("LineString", "MultiLineString") if track else ("Polygon", "MultiPolygon"))
        points = np.array(list(_coordinates(meta.footprint)))
        assert _inside(points[:, 0], points[:, 1], meta, tolerance=1e-3).all()


def test_known_extents_of_swaths_and_tracks() -> None:
    jason = read_granule_metadata(_real(next(n for n in REAL if n.startswith("jason1"))))
    assert (jason.west, jason.east) == pytest.approx((183.16775 - 360, 348.566881 - 360), abs=1e-3)  # 0..360
    assert jason.footprint is not None and jason.footprint["type"] == "LineString"
    amsr2 = read_granule_metadata(_real(next(n for n in REAL if "AMSR2" in n)))
    assert (amsr2.west, amsr2.east) == (-180.0, 180.0)  # reaches -89.37: polar
    for ascat in (n for n in REAL if n.startswith("ascat")):
        meta = read_granule_metadata(_real(ascat))
        assert (meta.west, meta.east) == (-180.0, 180.0) and meta.south < -89 and meta.north > 89


def test_a_track_across_the_antimeridian_in_0_360(tmp_path: Path) -> None:
    path = tmp_path / "track.nc"
    with netCDF4.Dataset(path, "w") as dataset:
        dataset.createDimension("time", 50)
        time = dataset.createVariable("time", "f8", ("time",))
        time.units, time.standard_name = "seconds since 2000-01-01", "time"
        time[:] = np.arange(50.0)
        for name, values in (("lat", np.linspace(-30, 30, 50)), ("lon", np.linspace(170, 195, 50))):
            variable = dataset.createVariable(name, "f8", ("time",))
            variable.units = "degrees_north" if name == "lat" else "degrees_east"
            variable[:] = values
        dataset.createVariable("ssha", "f4", ("time",))[:] = np.zeros(50)
    meta = read_granule_metadata(path)
    assert (meta.west, meta.south, meta.east, meta.north) == pytest.approx((170, -30, -165, 30))
    assert meta.footprint is not None and meta.footprint["type"] == "MultiLineString"
    west_part, east_part = meta.footprint["coordinates"]
    assert west_part[-1][0] == 180.0 and east_part[0][0] == -180.0 and west_part[-1][1] == east_part[0][1]
    assert [v.name for v in meta.variables] == ["ssha"]


def test_sentinel6_is_read_from_its_groups() -> None:
    names = [n for n in REAL if n.startswith("sentinel6")]
    meta = read_granule_metadata(_real(names[0]))
    variables = {v.name: v for v in meta.variables}
    assert "data_01/ku/ssha" in variables and "data_01/altitude" in variables
    assert variables["data_01/ku/ssha"].dims == ("time",)
    assert not {"data_01/latitude", "data_01/longitude", "data_01/time", "data_01/time_tai"} & set(variables)
    assert meta.footprint is not None and meta.footprint["type"] in ("LineString", "MultiLineString")
    assert meta.attributes["title"] == "L2 HR Near Real Time"


def test_smap_phony_dimensions_and_degree_units() -> None:
    meta = read_granule_metadata(_real(next(n for n in REAL if n.startswith("smap"))))
    assert all(dim.startswith("phony_dim_") for v in meta.variables for dim in v.dims)
    assert "lat" not in {v.name for v in meta.variables}
    assert meta.footprint is not None and meta.footprint["type"] == "Polygon"


def test_variables_and_attributes_of_a_ghrsst_l4() -> None:
    meta = read_granule_metadata(_real(next(n for n in REAL if "OSTIAanom" in n)))
    assert {v.name for v in meta.variables} == {"analysed_sst", "sst_anomaly"}
    sst = next(v for v in meta.variables if v.name == "analysed_sst")
    assert (sst.dims, sst.units) == (("time", "lat", "lon"), "kelvin")
    assert meta.attributes["id"] == "UKMO-L4LRfnd_GLOB-OSTIAanom"
    assert meta.attributes["processing_level"] == "L4"
    assert set(meta.attributes) <= {"title", "id", "platform", "sensor", "processing_level", "institution"} | {
        "product_version",
        "Conventions",
        "summary",
    }
    assert all(len(value) <= 500 for value in meta.attributes.values() if isinstance(value, str))


# Damaged and odd files: always UnreadableGranule with a reason, never another exception.


def _unreadable(path: Path) -> str:
    with pytest.raises(UnreadableGranule) as caught:
        read_granule_metadata(path)
    assert caught.value.reason and str(caught.value) == caught.value.reason
    return caught.value.reason


def _copy_head(source: Path, target: Path, length: int) -> Path:
    with source.open("rb") as stream:
        target.write_bytes(stream.read(length))
    return target


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.nc").touch()
    assert "empty" in _unreadable(tmp_path / "empty.nc")


def test_truncated_netcdf4(tmp_path: Path) -> None:
    source = _real(next(n for n in REAL if "VIIRS" in n))
    assert "damaged" in _unreadable(_copy_head(source, tmp_path / source.name, 10_000))


@pytest.mark.parametrize("kept", [10_000, -100])
def test_truncated_netcdf3(tmp_path: Path, kept: int) -> None:
    """netCDF-C reads zeros past the end of a truncated classic file; the header tells the size it needs."""
    source = _real(next(n for n in REAL if "OSTIAanom" in n))
    length = kept if kept > 0 else source.stat().st_size + kept
    assert "truncated NetCDF-3" in _unreadable(_copy_head(source, tmp_path / source.name, length))


@pytest.mark.parametrize("file_format", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
@pytest.mark.parametrize("record_variables", [1, 2])
def test_netcdf3_records_complete_and_cut(tmp_path: Path, file_format: ClassicFormat, record_variables: int) -> None:
    path = tmp_path / "records.nc"
    with netCDF4.Dataset(path, "w", format=file_format) as dataset:
        dataset.createDimension("time", None)
        dataset.createDimension("lat", 3)
        _write_lat_lon(dataset, lat_dims=("lat",))
        time = dataset.createVariable("time", "i2", ("time",))  # alone, 2-byte records are not padded
        time.units = "hours since 2020-01-01"
        time[:] = np.arange(5)
        for index in range(record_variables - 1):
            dataset.createVariable(f"flag{index}", "i1", ("time", "lat"))[:] = np.ones((5, 3))  # padded to 4
    meta = read_granule_metadata(path)  # complete: no false alarm, padded records or not
    assert (meta.time_start, meta.time_end) == (_utc("2020-01-01T00:00:00"), _utc("2020-01-01T04:00:00"))
    cut = path.stat().st_size - 4  # past the at most 3 padding bytes: into the data of the last record
    assert "truncated" in _unreadable(_copy_head(path, tmp_path / "cut.nc", cut))


def test_text_file_named_nc(tmp_path: Path) -> None:
    (tmp_path / "notes.nc").write_text("these are not data\n")
    assert "not a NetCDF or HDF5 file" in _unreadable(tmp_path / "notes.nc")


def test_directories_and_zarr_stores(tmp_path: Path) -> None:
    (tmp_path / "folder.nc").mkdir()
    assert "directory" in _unreadable(tmp_path / "folder.nc")
    (tmp_path / "empty.zarr").mkdir()
    (tmp_path / "empty.zarr" / ".zgroup").write_text('{"zarr_format": 2}')
    assert "no time" in _unreadable(tmp_path / "empty.zarr")  # read as Zarr: a store holding nothing


def test_zarr_v2_stores_are_read_and_v3_stores_refused_with_the_reason(tmp_path: Path) -> None:
    source = real_files("ghrsst-l4-ostia-anom-glob", "*.nc")[0]
    with xr.open_dataset(source) as dataset:
        dataset.to_zarr(tmp_path / "v2.zarr", zarr_format=2, consolidated=True)
        dataset.to_zarr(tmp_path / "v3.zarr", zarr_format=3, consolidated=False)
    from_zarr, from_netcdf = read_granule_metadata(tmp_path / "v2.zarr"), read_granule_metadata(source)
    assert (from_zarr.time_start, from_zarr.time_end) == (from_netcdf.time_start, from_netcdf.time_end)
    assert (from_zarr.west, from_zarr.south, from_zarr.east, from_zarr.north) == pytest.approx(
        (from_netcdf.west, from_netcdf.south, from_netcdf.east, from_netcdf.north)
    )
    assert {v.name for v in from_zarr.variables} == {v.name for v in from_netcdf.variables}
    assert "Zarr v3 store" in _unreadable(tmp_path / "v3.zarr")


def test_missing_file_and_fifo(tmp_path: Path) -> None:
    assert "no such file" in _unreadable(tmp_path / "gone.nc")
    os.mkfifo(tmp_path / "pipe.nc")
    assert "not a regular file" in _unreadable(tmp_path / "pipe.nc")  # opening it would block


def _write_lat_lon(dataset: Any, lat_dims: tuple[str, ...]) -> None:
    lat = dataset.createVariable("lat", "f4", lat_dims)
    lat.units = "degrees_north"
    lat[:] = np.linspace(-10, 10, 3)
    if "lon" not in dataset.dimensions:
        dataset.createDimension("lon", 4)
    lon = dataset.createVariable("lon", "f4", ("lon",))
    lon.units = "degrees_east"
    lon[:] = np.linspace(0, 30, 4)


def _write_without_time(path: Path) -> Path:
    with netCDF4.Dataset(path, "w") as dataset:
        dataset.createDimension("lat", 3)
        _write_lat_lon(dataset, lat_dims=("lat",))
        dataset.createVariable("sst", "f4", ("lat", "lon"))[:] = np.zeros((3, 4))
        dataset.title = "no time at all"
    return path


def test_no_time_information(tmp_path: Path) -> None:
    assert "no time information" in _unreadable(_write_without_time(tmp_path / "no_time.nc"))


def test_a_date_in_the_file_name_is_the_last_resort(tmp_path: Path) -> None:
    meta = read_granule_metadata(_write_without_time(tmp_path / "sst_20200315.nc"))
    assert (meta.time_start, meta.time_end) == (_utc("2020-03-15T00:00:00"), _utc("2020-03-15T00:00:00"))
    assert (meta.west, meta.south, meta.east, meta.north) == (-5.0, -15.0, 35.0, 15.0)
    copy = read_granule_metadata(_write_without_time(tmp_path / "tmpab12cd.nc"), name="sst_20200316T060000.nc")
    assert copy.time_start == _utc("2020-03-16T06:00:00")  # a local copy of a remote file, named by the caller


def test_no_position(tmp_path: Path) -> None:
    with netCDF4.Dataset(tmp_path / "nowhere.nc", "w") as dataset:
        dataset.time_coverage_start = "2020-01-01T00:00:00Z"
        dataset.createDimension("x", 2)
        dataset.createVariable("value", "f4", ("x",))[:] = [1, 2]
    assert "no position" in _unreadable(tmp_path / "nowhere.nc")


def test_a_real_file_copied_whole_stays_readable(tmp_path: Path) -> None:
    """The NetCDF-3 size check holds no false alarm (all real files are checked in the table test too)."""
    source = _real(next(n for n in REAL if n.startswith("ascat")))
    shutil.copy(source, tmp_path / source.name)
    assert read_granule_metadata(tmp_path / source.name).time_start == _utc("2015-07-02T08:42:00")


# The demo archive: antimeridian crossings and polar passes.


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    from nephelae.demo.archive import build_demo_archive  # imported here: the demo package pulls in the indexer

    root = tmp_path_factory.mktemp("demo")
    datasets = build_demo_archive(root, days=2)
    return {demo.id: sorted(demo.root.glob(demo.pattern)) for demo in datasets}


def test_demo_grids(demo_files: dict[str, list[Path]]) -> None:
    for path in demo_files["demo-l4-sst"]:
        meta = read_granule_metadata(path)
        assert (meta.west, meta.south, meta.east, meta.north) == GLOBAL
        assert meta.time_start == meta.time_end and meta.time_start.hour == 12  # the time coordinate
    for path in demo_files["demo-surface-met"]:
        meta = read_granule_metadata(path)
        assert meta.time_end - meta.time_start == dt.timedelta(days=1)  # the time bounds


def test_demo_swaths_hold_every_pixel(demo_files: dict[str, list[Path]]) -> None:
    crossing = polar = 0
    for path in demo_files["demo-l2p-sst"]:
        meta = read_granule_metadata(path)
        with xr.open_dataset(path, decode_times=False) as dataset:
            lat, lon = dataset["lat"].values.astype(np.float64), dataset["lon"].values.astype(np.float64)
            start = dt.datetime.strptime(dataset.attrs["time_coverage_start"], "%Y%m%dT%H%M%SZ")
            end = dt.datetime.strptime(dataset.attrs["time_coverage_end"], "%Y%m%dT%H%M%SZ")
        assert _inside(lon, lat, meta).all(), path.name
        assert (meta.time_start, meta.time_end) == (start.replace(tzinfo=dt.UTC), end.replace(tzinfo=dt.UTC))
        assert meta.footprint is not None
        if np.abs(lat).max() > 88:
            polar += 1
            assert (meta.west, meta.east) == (-180.0, 180.0)
        elif lon.max() > 150 and lon.min() < -150:
            crossing += 1
            assert meta.west > meta.east
            assert meta.footprint["type"] == "MultiPolygon"
            assert (meta.west - meta.east) > 180  # the short way round: a box of tens of degrees, not the globe
    assert crossing >= 2 and polar >= 2  # one of each per day
