"""L2P binning against numpy's own 2-D histograms of the kept pixels, on real L2P swaths and on demo swaths that
cross the antimeridian and pass over a pole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nephelae.demo.archive import build_demo_archive
from nephelae.errors import InvalidInput
from nephelae.toolbox import bin_l2p
from tests.support.real_data import real_files

SST = "sea_surface_temperature"


def histograms(
    lat: np.ndarray, lon: np.ndarray, values: np.ndarray, lat_edges: np.ndarray, lon_edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and population standard deviation per cell, by `np.histogram2d` (weights: values, squares)."""
    keep = np.isfinite(values) & np.isfinite(lat) & np.isfinite(lon)
    lat, lon, values = lat[keep], lon[keep], values[keep]
    count = np.histogram2d(lat, lon, bins=[lat_edges, lon_edges])[0]
    total = np.histogram2d(lat, lon, bins=[lat_edges, lon_edges], weights=values)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        centred = values - mean[_cell(lat, lat_edges), _cell(lon, lon_edges)]
        squares = np.histogram2d(lat, lon, bins=[lat_edges, lon_edges], weights=centred**2)[0]
        std = np.sqrt(squares / count)
    return count, mean, std


def _cell(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)


def edges(centres: np.ndarray, resolution: float) -> np.ndarray:
    return np.append(centres - resolution / 2, centres[-1] + resolution / 2)


def kept_pixels(swath: xr.Dataset, min_quality: int | None, sses_bias: bool = False) -> np.ndarray:
    values = swath[SST].values.astype(np.float64)
    if min_quality is not None:
        values = np.where(swath["quality_level"].values >= min_quality, values, np.nan)
    if sses_bias:
        values = values - swath["sses_bias"].values
    return values


def without_edge_pixels(swath: xr.Dataset, resolution: float) -> xr.Dataset:
    """The swath without the pixels on a cell edge (to 1e-4 degree, float32 coordinates): quantised coordinates put
    some there, and which side they fall on is then a matter of rounding, in numpy's histogram as in the binning."""
    ratios = [swath[name].values / resolution for name in ("lat", "lon")]
    on_edge = np.zeros(ratios[0].shape, dtype=bool)
    for ratio in ratios:
        on_edge |= np.abs(ratio - np.round(ratio)) < 1e-4 / resolution
    assert on_edge.mean() < 0.1  # AMSR2 positions are rounded to 0.01 degree: 7 % lie on 0.25 degree edges
    copy = swath.copy(deep=True)
    copy[SST] = copy[SST].where(~on_edge)
    return copy


def assert_matches_histograms(result: xr.Dataset, lat: np.ndarray, lon: np.ndarray, values: np.ndarray) -> None:
    resolution = float(result["lat"].values[1] - result["lat"].values[0])
    lat_edges, lon_edges = edges(result["lat"].values, resolution), edges(result["lon"].values, resolution)
    count, mean, std = histograms(lat.ravel(), lon.ravel(), values.ravel(), lat_edges, lon_edges)
    assert count.sum() > 100  # the comparison is about something
    np.testing.assert_array_equal(result[f"{SST}_count"].values[0], count)
    np.testing.assert_allclose(result[SST].values[0], mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(result[f"{SST}_stddev"].values[0], std, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize(
    ("product", "resolution", "bbox", "min_quality", "sses_bias"),
    [
        ("ghrsst-l2p-amsr2-remss", 0.25, None, 4, True),
        ("ghrsst-l2p-viirs-npp-navo", 0.1, (-173.0, 62.0, -140.0, 75.0), 5, False),
        ("ghrsst-l2p-modis-terra-jpl", 0.05, (-79.0, -54.0, -60.0, -43.5), None, False),
    ],
)
def test_real_swaths_bin_as_numpy_histograms_of_the_kept_pixels(
    product: str, resolution: float, bbox: tuple[float, float, float, float] | None, min_quality: int, sses_bias: bool
) -> None:
    with xr.open_dataset(real_files(product, "*.nc")[0]) as opened:
        swath = without_edge_pixels(opened, resolution)
        result = bin_l2p(swath, resolution=resolution, bbox=bbox, min_quality=min_quality, sses_bias=sses_bias)
        values = kept_pixels(swath, min_quality, sses_bias)
        lat = np.broadcast_to(swath["lat"].values, values.shape)
        lon = np.broadcast_to(swath["lon"].values, values.shape)
        assert_matches_histograms(result, lat, lon, values)
        if bbox is None:
            assert result[f"{SST}_count"].sum() == np.isfinite(values).sum()  # every kept pixel lands somewhere
        assert result[SST].attrs["units"] == swath[SST].attrs["units"]
        assert result.time.values[0] == swath.time.values[0]


def test_quality_filter_and_bias_change_what_is_binned() -> None:
    with xr.open_dataset(real_files("ghrsst-l2p-amsr2-remss", "*.nc")[0]) as swath:
        everything = bin_l2p(swath, resolution=1.0, min_quality=0)
        best = bin_l2p(swath, resolution=1.0, min_quality=5)
        corrected = bin_l2p(swath, resolution=1.0, min_quality=0, sses_bias=True)
        quality = swath["quality_level"].values
        assert int(everything[f"{SST}_count"].sum()) == int((np.isfinite(swath[SST].values) & (quality >= 0)).sum())
        assert int(best[f"{SST}_count"].sum()) == int((np.isfinite(swath[SST].values) & (quality >= 5)).sum())
        assert best[f"{SST}_count"].sum() < everything[f"{SST}_count"].sum()
        shift = (everything[SST] - corrected[SST]).values
        assert np.nanmax(np.abs(shift)) > 0  # the SSES bias was subtracted


@pytest.fixture(scope="module")
def demo_swaths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("demo")
    build_demo_archive(root, start=dt.date(2020, 1, 1), days=1)
    return sorted((root / "demo-l2p-sst").rglob("*.nc"))


def crossing(paths: list[Path]) -> Path:
    """The demo swath crossing the antimeridian (its longitudes reach both ends)."""
    for path in paths:
        with xr.open_dataset(path) as swath:
            lon = swath["lon"].values
            if np.nanmin(lon) < -179 and np.nanmax(lon) > 179 and np.nanmin(np.abs(swath["lat"].values)) < 85:
                return path
    raise AssertionError("no demo swath crosses the antimeridian")


def test_a_swath_across_the_antimeridian_lands_on_both_sides(demo_swaths: list[Path]) -> None:
    with xr.open_dataset(crossing(demo_swaths)) as swath:
        lat_values = swath["lat"].values
        south, north = float(np.floor(np.nanmin(lat_values))), float(np.ceil(np.nanmax(lat_values)))
        result = bin_l2p(swath, resolution=1.0, bbox=(170.0, south, -170.0, north))
        lon = result["lon"].values
        assert lon[0] == 170.5 and lon[-1] == 189.5 and np.all(np.diff(lon) == 1.0)  # increasing across 180
        values = kept_pixels(swath, 4)[0]
        shifted = np.where(swath["lon"].values < 0, swath["lon"].values + 360, swath["lon"].values)
        assert_matches_histograms(result, lat_values, shifted, values)
        counts = result[f"{SST}_count"].values[0]
        assert counts[:, lon < 180].sum() > 0 and counts[:, lon > 180].sum() > 0


def test_polar_and_global_binning_keeps_every_pixel(demo_swaths: list[Path]) -> None:
    swaths = [xr.open_dataset(path) for path in demo_swaths]
    try:
        result = bin_l2p(swaths, resolution=2.0, min_quality=3)
        kept = [kept_pixels(swath, 3) for swath in swaths]
        lat = np.concatenate([swath["lat"].values.ravel() for swath in swaths])
        lon = np.concatenate([swath["lon"].values.ravel() for swath in swaths])
        values = np.concatenate([value.ravel() for value in kept])
        assert_matches_histograms(result, lat, lon, values)
        assert int(result[f"{SST}_count"].sum()) == int(np.isfinite(values).sum())
        assert np.nanmin(lat) < -85 or np.nanmax(lat) > 85  # one demo swath passes over a pole
        times = [swath.time.values[0] for swath in swaths]
        assert result["time_bnds"].values.tolist() == [[min(times).astype(int), max(times).astype(int)]]
    finally:
        for swath in swaths:
            swath.close()


def test_a_time_stack_a_list_and_dask_give_the_same_grid(demo_swaths: list[Path]) -> None:
    lazy = [xr.open_dataset(path, chunks={}) for path in demo_swaths]
    try:
        stacked = xr.concat(lazy, dim="time", coords="different", compat="equals")
        from_stack = bin_l2p(stacked, resolution=1.0)
        assert from_stack[SST].chunks is not None  # lazy in, lazy out
        from_list = bin_l2p([swath.load() for swath in lazy], resolution=1.0)
        xr.testing.assert_allclose(from_stack.compute(), from_list)
    finally:
        for swath in lazy:
            swath.close()


def test_cf_description_of_the_grid(demo_swaths: list[Path]) -> None:
    with xr.open_dataset(demo_swaths[0]) as swath:
        result = bin_l2p(swath, resolution=0.5)
    assert result["lat"].attrs["standard_name"] == "latitude" and result["lat"].attrs["units"] == "degrees_north"
    assert result["lon"].attrs["standard_name"] == "longitude" and result["lon"].attrs["units"] == "degrees_east"
    assert result[SST].attrs["cell_methods"] == "area: mean"
    assert result[f"{SST}_stddev"].attrs["cell_methods"] == "area: standard_deviation"
    assert result[SST].attrs["ancillary_variables"] == f"{SST}_count {SST}_stddev"
    assert result[SST].attrs["standard_name"] == "sea_surface_skin_temperature"
    assert result.sizes == {"time": 1, "lat": 360, "lon": 720, "nv": 2}
    assert result["lat_bnds"].values[0].tolist() == [-90.0, -89.5]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resolution": 0.7}, "does not divide 180"),
        ({"resolution": 0}, "resolution must be a number of degrees"),
        ({"resolution": 1.0, "variable": "wind"}, "no variable 'wind'"),
        ({"resolution": 1.0, "bbox": (0.0, 10.0, 5.0, -10.0)}, "south < north"),
        ({"resolution": 1.0, "bbox": (5.0, -10.0, 5.0, 10.0)}, "west equals east"),
    ],
)
def test_bad_options_are_refused(demo_swaths: list[Path], options: dict[str, object], message: str) -> None:
    with xr.open_dataset(demo_swaths[0]) as swath, pytest.raises(InvalidInput, match=message):
        bin_l2p(swath, **options)  # type: ignore[arg-type]


def test_a_swath_without_quality_levels_or_bias_says_what_to_do() -> None:
    with xr.open_dataset(real_files("ghrsst-l2p-modis-terra-jpl", "*.nc")[0]) as swath:
        with pytest.raises(InvalidInput, match="no quality_level; bin every pixel with min_quality None"):
            bin_l2p(swath, resolution=1.0)
        with pytest.raises(InvalidInput, match="no sses_bias to subtract"):
            bin_l2p(swath, resolution=1.0, min_quality=None, sses_bias=True)
