"""Quicklooks: real PNGs read back pixel by pixel (missing cells grey, orientation right), bad input refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from nephelae.errors import InvalidInput
from nephelae.toolbox import map_png, timeseries_png
from nephelae.toolbox.quicklook import MISSING_GREY
from tests.support.real_data import real_files

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _pixels(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    pixels: np.ndarray = imread(io.BytesIO(png), format="png")[..., :3]
    return pixels


def _grey(pixels: np.ndarray) -> np.ndarray:
    """Pixels inside solid grey areas: the anti-aliased edges of black text have grey pixels too, but no 3x3 block."""
    grey = np.all(np.abs(pixels - np.array(MISSING_GREY)) < 0.5 / 255, axis=-1)
    solid: np.ndarray = grey.copy()
    solid[1:-1, 1:-1] &= grey[:-2, 1:-1] & grey[2:, 1:-1] & grey[1:-1, :-2] & grey[1:-1, 2:]
    solid[[0, -1], :] = False
    solid[:, [0, -1]] = False
    return solid


def _field(lat: np.ndarray, lon: np.ndarray, missing: np.ndarray | None = None) -> xr.DataArray:
    values = np.add.outer(lat, np.zeros(lon.size)) + 0.1 * np.add.outer(np.zeros(lat.size), np.arange(lon.size))
    if missing is not None:
        values[missing] = np.nan
    return xr.DataArray(
        values,
        dims=("lat", "lon"),
        coords={"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})},
        name="sst",
        attrs={"units": "kelvin", "long_name": "sea surface temperature"},
    )


def test_a_map_is_a_png_and_missing_cells_are_grey_where_they_are() -> None:
    lat, lon = np.arange(-89.5, 90, 1.0), np.arange(-179.5, 180, 1.0)
    west = np.zeros((lat.size, lon.size), dtype=bool)
    west[:, : lon.size // 2] = True
    pixels = _pixels(map_png(_field(lat, lon, west), title="west is land"))
    assert pixels.shape == (480, 800, 3)
    grey = _grey(pixels)
    columns = np.flatnonzero(grey.any(axis=0))
    assert grey.sum() > 20_000  # about half of the map
    full = _grey(_pixels(map_png(_field(lat, lon))))
    assert not full.any()  # no missing cell, no grey
    painted = np.flatnonzero(~np.all(pixels > 0.99, axis=-1).all(axis=0))  # columns with anything but white
    assert columns.max() < (painted.min() + painted.max()) / 2  # all grey is in the western (left) half


def test_descending_latitudes_draw_the_same_map() -> None:
    lat, lon = np.arange(-59.5, 60, 1.0), np.arange(0.5, 90, 1.0)
    north = np.zeros((lat.size, lon.size), dtype=bool)
    north[lat > 30, :] = True
    ascending = _field(lat, lon, north)
    descending = ascending.isel(lat=slice(None, None, -1))
    assert map_png(ascending) == map_png(descending)
    grey = _grey(_pixels(map_png(descending)))
    rows = np.flatnonzero(grey.any(axis=1))
    assert rows.max() < grey.shape[0] / 2  # the missing north is at the top of the picture


def test_an_irregular_grid_is_drawn_where_its_cells_are() -> None:
    lat = np.sin(np.linspace(-1.4, 1.4, 60)) * 90.0  # denser near the poles, like no regular grid
    lon = np.arange(0.5, 90, 1.0)
    north = np.zeros((lat.size, lon.size), dtype=bool)
    north[lat > 60, :] = True  # 24% of the rows, but only the top 17% of the map
    pixels = _pixels(map_png(_field(lat, lon, north), title=""))
    middle = int(np.median(np.flatnonzero(_grey(pixels).any(axis=0))))  # a column through the map
    drawn = np.flatnonzero(~np.all(pixels[:, middle] > 0.99, axis=-1))  # the map (and maybe a tick label below)
    top = drawn.min()
    bottom = top + np.flatnonzero(np.diff(drawn) > 1)[0] if np.any(np.diff(drawn) > 1) else drawn.max()
    grey = _grey(pixels)[top : bottom + 1, middle]
    first = np.flatnonzero(lat > 60)[0]
    edge, north_edge = (lat[first - 1] + lat[first]) / 2, lat[-1] + (lat[-1] - lat[-2]) / 2  # cells end half-way
    assert abs(grey.mean() - (north_edge - edge) / (2 * north_edge)) < 0.015


def test_a_subset_across_the_antimeridian_is_drawn_in_one_piece() -> None:
    lat = np.arange(-9.5, 10, 1.0)
    across = np.concatenate([np.arange(170.5, 180, 1.0), np.arange(-179.5, -170, 1.0)])
    east = np.zeros((lat.size, across.size), dtype=bool)
    east[:, across < 0] = True  # the part east of 180 is missing
    png = map_png(_field(lat, across, east), title="t")
    continuous = map_png(_field(lat, np.arange(170.5, 190, 1.0), east), title="t")
    assert png == continuous  # same picture as with longitudes 170..190, labelled -170 beyond 180
    grey = _grey(_pixels(png))
    painted = np.flatnonzero(~np.all(_pixels(png) > 0.99, axis=-1).all(axis=0))
    assert np.flatnonzero(grey.any(axis=0)).min() > (painted.min() + painted.max()) / 2 - 60


def test_a_field_with_no_valid_cell_is_all_grey() -> None:
    lat, lon = np.arange(-9.5, 10, 1.0), np.arange(0.5, 20, 1.0)
    grey = _grey(_pixels(map_png(_field(lat, lon, np.ones((lat.size, lon.size), dtype=bool)))))
    assert grey.sum() > 10_000


def test_a_real_map_shows_its_land_in_grey() -> None:
    with xr.open_dataset(real_files("ghrsst-l4-mur25-glob")[0]) as ds:
        png = map_png(ds["analysed_sst"].isel(time=0))
    grey = _grey(_pixels(png)).mean()
    assert 0.05 < grey < 0.4  # land, the ice edge and masked cells


def test_a_real_swath_map() -> None:
    with xr.open_dataset(real_files("ghrsst-l2p-viirs-npp-navo")[0]) as ds:
        png = map_png(ds["sea_surface_temperature"], vmin=270, vmax=290, cmap="viridis")
    assert _pixels(png).shape == (480, 800, 3)


def test_a_time_series_plot() -> None:
    time = np.arange("2020-01-01", "2020-03-01", dtype="datetime64[D]").astype("datetime64[ns]")
    values = np.sin(np.arange(time.size) / 5.0)
    values[10:15] = np.nan  # a gap stays a gap
    series = xr.DataArray(values, dims="time", coords={"time": time}, name="sst", attrs={"units": "K"})
    pixels = _pixels(timeseries_png(series, title="area mean"))
    assert pixels.shape == (400, 800, 3)
    month = xr.DataArray(np.arange(12.0), dims="month", coords={"month": np.arange(1, 13)}, name="clim")
    assert _pixels(timeseries_png(month)).shape == (400, 800, 3)  # a climatology plots too


def test_bad_input_is_refused_with_a_clear_message() -> None:
    cube = xr.DataArray(np.zeros((2, 3, 4)), dims=("time", "lat", "lon"), name="sst")
    with pytest.raises(InvalidInput, match="map needs a 2-D field; sst has dimensions time=2, lat=3, lon=4"):
        map_png(cube)
    with pytest.raises(InvalidInput, match="1-D series"):
        timeseries_png(cube)
    with pytest.raises(InvalidInput, match="not a whole dataset"):
        map_png(cube.to_dataset())  # type: ignore[arg-type]
    field = _field(np.arange(-9.5, 10, 1.0), np.arange(0.5, 10, 1.0))
    with pytest.raises(InvalidInput, match="unknown colour map 'rainbowish'"):
        map_png(field, cmap="rainbowish")
    with pytest.raises(InvalidInput, match="no latitude coordinate"):
        map_png(field.drop_vars("lat").rename(lat="y"))
    with pytest.raises(InvalidInput, match="not numbers"):
        map_png(field.astype(str))


@pytest.mark.parametrize(("rows", "columns"), [(1, 1), (1, 6), (5, 1)])
def test_a_box_one_cell_wide_is_still_a_map(rows: int, columns: int) -> None:
    # A one-step map of a box one row high (a transect) or one cell small: squeezing every axis of size one left
    # fewer than two dimensions, and the map was refused with "select one time step".
    field = _field(np.arange(rows) + 0.5, np.arange(columns) + 0.5).expand_dims(time=1)
    assert _pixels(map_png(field)).shape == (480, 800, 3)
