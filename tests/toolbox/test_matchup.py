"""Match-ups against a brute-force search (every pair's haversine distance and time lag) on small sets."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr

from nephelae.errors import InvalidInput
from nephelae.toolbox import matchups

START = np.datetime64("2020-01-01T00:00", "ns")
WINDOW = dt.timedelta(hours=6)


def haversine(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Independent of the module's: the textbook formula, Earth radius 6371.0088 km."""
    p1, p2, dl = np.radians(lat1), np.radians(lat2), np.radians(lon2 - lon1)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(a))


def points(n: int, seed: int, name: str, box: tuple[float, float, float, float] = (-20, 30, 0, 45)) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    west, south, east, north = box
    lon = rng.uniform(west, east, n)
    lat = rng.uniform(south, north, n)
    time = START + (rng.uniform(0, 48, n) * 3600e9).astype("timedelta64[ns]")
    values = rng.normal(290, 2, n)
    values[rng.random(n) < 0.1] = np.nan  # some samples without a value
    coords = {
        "lat": ("obs", lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("obs", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        "time": ("obs", time, {"standard_name": "time"}),
    }
    return xr.Dataset({name: ("obs", values, {"units": "K", "long_name": name})}, coords=coords)


def brute_force(a: xr.Dataset, b: xr.Dataset, va: str, vb: str, km: float, window: dt.timedelta) -> dict[int, int]:
    """For each sample of a with a value, the b sample (with a value) nearest within the windows, by full search."""
    lag_max = np.timedelta64(window).astype("timedelta64[ns]")
    found = {}
    b_ok = np.flatnonzero(np.isfinite(b[vb].values))
    for i in np.flatnonzero(np.isfinite(a[va].values)):
        distance = haversine(a.lat.values[i], a.lon.values[i], b.lat.values[b_ok], b.lon.values[b_ok])
        lag = np.abs(b.time.values[b_ok] - a.time.values[i])
        ok = (distance <= km) & (lag <= lag_max)
        if ok.any():
            candidates = np.flatnonzero(ok)
            best = candidates[np.lexsort((lag[candidates], distance[candidates]))[0]]
            found[int(i)] = int(b_ok[best])
    return found


def test_point_matchups_are_the_brute_force_nearest_within_the_windows() -> None:
    a, b = points(300, 1, "sst"), points(400, 2, "wind")
    result = matchups(a, b, max_distance_km=120, max_time_difference=WINDOW, variables_a=["sst"], variables_b=["wind"])
    expected = brute_force(a, b, "sst", "wind", 120, WINDOW)
    assert len(expected) > 20  # the comparison is about something
    assert result.sizes["matchup"] == len(expected)
    index_a = {float(value): i for i, value in enumerate(a["sst"].values) if np.isfinite(value)}
    for row in range(result.sizes["matchup"]):
        i = index_a[float(result["a_sst"].values[row])]
        j = expected[i]
        assert result["b_wind"].values[row] == b["wind"].values[j]
        assert result["b_lat"].values[row] == b.lat.values[j] and result["a_lon"].values[row] == a.lon.values[i]
        assert result["b_time"].values[row] == b.time.values[j]
        distance = haversine(a.lat.values[i], a.lon.values[i], b.lat.values[j], b.lon.values[j])
        np.testing.assert_allclose(result["distance"].values[row], distance, rtol=1e-9)
        lag = (b.time.values[j] - a.time.values[i]) / np.timedelta64(1, "s")
        assert result["time_difference"].values[row] == lag
    assert result["distance"].attrs["units"] == "km" and result["a_sst"].attrs["units"] == "K"
    assert (result["distance"] <= 120).all() and (np.abs(result["time_difference"]) <= 6 * 3600).all()


def test_a_swath_against_a_grid() -> None:
    rng = np.random.default_rng(5)
    lat2d, lon2d = np.meshgrid(np.linspace(10, 12, 15), np.linspace(-31, -29, 12), indexing="ij")
    swath = xr.Dataset(
        {"sst": (("time", "nj", "ni"), rng.normal(295, 1, (1, 15, 12)), {"units": "K"})},
        coords={"time": [START + np.timedelta64(3, "h")], "lat": (("nj", "ni"), lat2d), "lon": (("nj", "ni"), lon2d)},
    )
    grid_lat, grid_lon = np.arange(9.125, 13, 0.25), np.arange(-32.875, -28, 0.25)
    grid = xr.Dataset(
        {"analysed_sst": (("time", "lat", "lon"), rng.normal(295, 1, (2, grid_lat.size, grid_lon.size)))},
        coords={"time": [START, START + np.timedelta64(1, "D")], "lat": grid_lat, "lon": grid_lon},
    )
    result = matchups(
        swath, grid, max_distance_km=30, max_time_difference=WINDOW, variables_a=["sst"], variables_b=["analysed_sst"]
    )
    assert result.sizes["matchup"] == 15 * 12  # every pixel has a cell within 30 km, on the first day only
    assert (result["b_time"] == START).all()
    for row in range(0, result.sizes["matchup"], 17):
        lat, lon = float(result["a_lat"][row]), float(result["a_lon"][row])
        distances = haversine(lat, lon, *np.meshgrid(grid_lat, grid_lon, indexing="ij"))
        nearest = np.unravel_index(np.argmin(distances), distances.shape)
        assert result["b_analysed_sst"].values[row] == grid["analysed_sst"].values[0][nearest]


def test_matchups_across_the_antimeridian() -> None:
    a = points(50, 3, "sst", box=(179.5, -5, 180, 5))
    b = points(50, 4, "wind", box=(-180, -5, -179.5, 5))
    result = matchups(
        a, b, max_distance_km=80, max_time_difference=dt.timedelta(days=2), variables_a=["sst"], variables_b=["wind"]
    )
    assert result.sizes["matchup"] == len(brute_force(a, b, "sst", "wind", 80, dt.timedelta(days=2))) > 10


def test_nothing_in_the_time_window_gives_an_empty_result() -> None:
    a, b = points(30, 1, "sst"), points(30, 2, "wind")
    b = b.assign_coords(time=b.time + np.timedelta64(30, "D"))
    result = matchups(a, b, max_distance_km=500, max_time_difference=WINDOW, variables_a=["sst"], variables_b=["wind"])
    assert result.sizes["matchup"] == 0 and "a_sst" in result and "distance" in result


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"variables_a": ["nope"]}, "dataset a has no variable nope; it has sst"),
        ({"variables_b": []}, "name at least one variable of dataset b"),
        ({"max_distance_km": -1}, "max_distance_km must be a positive number"),
        ({"max_time_difference": 3600}, "max_time_difference must be a non-negative timedelta"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "max_distance_km": 100,
        "max_time_difference": WINDOW,
        "variables_a": ["sst"],
        "variables_b": ["wind"],
    }
    with pytest.raises(InvalidInput, match=message):
        matchups(points(5, 1, "sst"), points(5, 2, "wind"), **(arguments | options))  # type: ignore[arg-type]


def test_a_dataset_without_time_is_refused() -> None:
    with pytest.raises(InvalidInput, match="dataset b has no decoded time"):
        matchups(
            points(5, 1, "sst"),
            points(5, 2, "wind").drop_vars("time"),
            max_distance_km=100,
            max_time_difference=WINDOW,
            variables_a=["sst"],
            variables_b=["wind"],
        )


@pytest.mark.parametrize("decoded", [False, True], ids=["seconds", "timedelta"])
def test_l2p_pixels_are_dated_by_their_sst_dtime(decoded: bool) -> None:
    # GDS 2.0: a pixel was observed at time + sst_dtime (up to 99 minutes into the real AMSR2 swath); the match-ups
    # dated every pixel at the reference time, so a buoy 60 minutes after it fell outside a 10-minute window.
    dtime = np.array([[[0.0, 3600.0, np.nan]]])
    swath = xr.Dataset(
        {
            "sea_surface_temperature": (("time", "nj", "ni"), np.array([[[290.0, 291.0, 292.0]]]), {"units": "K"}),
            "sst_dtime": (
                ("time", "nj", "ni"),
                (dtime * 1e9).astype("timedelta64[ns]") if decoded else dtime,
                {} if decoded else {"units": "second"},
            ),
        },
        coords={"time": [START], "lat": (("nj", "ni"), [[10.0, 20.0, 30.0]]), "lon": (("nj", "ni"), [[0.0, 0.0, 0.0]])},
    )
    buoys = xr.Dataset(
        {"temp": ("obs", [290.5, 291.5, 292.5])},
        coords={
            "lat": ("obs", [10.0, 20.0, 30.0], {"units": "degrees_north"}),
            "lon": ("obs", [0.0, 0.0, 0.0], {"units": "degrees_east"}),
            "time": ("obs", START + np.array([0, 3600, 0], dtype="timedelta64[s]").astype("timedelta64[ns]")),
        },
    )
    result = matchups(
        swath,
        buoys,
        max_distance_km=5,
        max_time_difference=dt.timedelta(minutes=10),
        variables_a=["sea_surface_temperature"],
        variables_b=["temp"],
    )
    assert result["a_sea_surface_temperature"].values.tolist() == [290.0, 291.0, 292.0]
    assert result["a_time"].values.tolist() == (START + np.array([0, 3600, 0], dtype="timedelta64[s]")).tolist()
    assert result["time_difference"].values.tolist() == [0.0, 0.0, 0.0]
