"""Pure numpy synthesis of the demo Earth: grids, seeded noise, land and lakes, and the daily L4 SST analysis.

Everything is a deterministic function of (seed, time). Random numbers come from a counter-based hash rather
than a stateful generator, so that an eddy or a granule on a given day is the same whatever the first day or the
number of days of the build: archives built over different periods agree where they overlap.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

EPOCH = dt.datetime(1981, 1, 1)  # the GHRSST time origin
FREEZING_C = -1.8
KELVIN = 273.15

# A 5-degree sketch of the continents (rows from the North Pole, columns from 180W), smoothed and roughened below;
# the ellipses add what 5 degrees cannot draw. Ellipses: lon, lat, half-width, half-height (deg), rotation (deg).
_WORLD = (
    "........................................................................",  # 90..85
    "..................##############........................................",  # 85..80
    "............#########.##########......##.......#.......##...............",  # 80..75
    "...........###########..########..............##.##############.........",  # 75..70
    "##.################..###.######.......##################################",  # 70..65
    "...###############..####..##.........##################################.",  # 65..60
    "....#############...####...........#.###########################...##...",  # 60..55
    "..........###############.........##.############################..#....",  # 55..50
    "...........##############..........############################.#.......",  # 50..45
    "...........############...........############################..#.......",  # 45..40
    "............#########.............##.....#####################.##.......",  # 40..35
    "............########..............###########################.#.........",  # 35..30
    ".............####..#.............############################...........",  # 30..25
    "..............###................###############..########..............",  # 25..20
    "...............####..............##############...###.####..............",  # 20..15
    "..................##.............############.....##...###..............",  # 15..10
    "....................#####.........############..........#...............",  # 10..5
    "....................######...........########.............##............",  # 5..0
    "....................########..........######..............##............",  # 0..-5
    "....................########..........######............................",  # -5..-10
    ".....................#######..........######..................###.......",  # -10..-15
    "......................######..........#####..................#####......",  # -15..-20
    "......................######...........####................#######......",  # -20..-25
    "......................#####............####................########.....",  # -25..-30
    "......................####.............###.................##..####.....",  # -30..-35
    ".....................###........................................##......",  # -35..-40
    ".....................##.................................................",  # -40..-45
    ".....................##.................................................",  # -45..-50
    ".....................##.................................................",  # -50..-55
    "........................................................................",  # -55..-60
    ".......................#................................................",  # -60..-65
    "......................##....................#########################...",  # -65..-70
    "......##################........######################################..",  # -70..-75
    "...######################....#########################################..",  # -75..-80
    "########################################################################",  # -80..-85
    "########################################################################",  # -85..-90
)
_SKETCH = np.array([[cell == "#" for cell in row] for row in _WORLD])
_ISLANDS = """
    Iceland: -19 65 4.5 1.6 0; Great Britain: -2.5 54.5 2 4 -15; Ireland: -8 53.4 1.8 2 0; Italy: 12.5 42.5 1.4 5.5 45;
    Sicily: 14 37.5 1.5 0.6 0; Corsica and Sardinia: 9 41 0.8 2.5 0; Greece: 22 39 2.5 2.5 0; Denmark: 9.5 56 1.2 1.5 0;
    Honshu: 138 36.5 1.2 6.5 -54; Kyushu: 131 32.5 1 1.5 0; Hokkaido: 143 43.5 2.2 1.5 0; Korea: 127.5 37 1.6 3 0;
    Taiwan: 121 23.7 0.8 1.8 0; Hainan: 109.7 19.2 1.2 0.9 0; Luzon: 121.2 16 1.3 2.6 0; Mindanao: 125 7.5 2 1.6 0;
    Visayas: 123.5 11 2 1 0; Sri Lanka: 80.7 7.7 1 1.8 0; Sumatra: 101.5 -0.5 1.8 6.5 42; Java: 110 -7.3 5 1 -5;
    Borneo: 114 1 4.5 5 0; Sulawesi: 121 -2 1.5 3 0; New Guinea: 141 -5.5 9 2.8 -25; Madagascar: 46.8 -19.5 2.6 6.5 -18;
    Tasmania: 146.5 -42 1.7 1.3 0; North Island: 175.5 -38.5 1.8 3.5 39; South Island: 170.5 -44 1.8 4.5 -54;
    Cuba: -79.5 21.8 5 1 -10; Hispaniola: -71 19 2.5 1.1 0; Florida: -81.5 27.5 1.5 3.2 -10; Baja: -113 28 1.3 5.5 36;
    Yucatan: -89 19.5 2 2.3 0; Central America: -85 12 8 2.2 -29; Newfoundland: -56 48.5 3 2.5 0;
    Svalbard: 17 78.5 5 2 0; Novaya Zemlya: 57 74 2 5 -35; Sakhalin: 142.7 50 1 4.5 0;
    Alaska Peninsula: -158 57 5 1.5 25; Kamchatka: 159 56 3 5 -20; Antarctic Peninsula: -63 -66.5 6 1.8 30
"""
_SEAS = """
    Balearic: 4 39 7 3 0; Ionian: 18 35 8 3 0; Levantine: 29 34 6 2 0; Alboran: -2 36.2 3.5 0.9 0;
    Kattegat: 12.5 56 1.5 1.5 0; Aegean: 25 38.5 1.5 2 0; Adriatic: 15.5 43 1 3.5 50; Tyrrhenian: 12 40 2.5 2.5 0;
    Black Sea: 34.5 43.3 6 2.2 0; Red Sea: 38 20.5 1.3 9.5 33; Persian Gulf: 51.5 27 4.5 1.8 -33;
    Baltic: 19.5 58 2.5 4 0; Bothnia: 20.5 63 2 3 30; Gulf of Finland: 26 60 3 0.8 0; White Sea: 37 65.5 2.5 1.5 0;
    Hudson Bay: -86 59 7 5 0; James Bay: -80 53 1.5 2 0; Gulf of California: -111 28 1.1 4.5 35;
    Gulf of Mexico: -90 25.5 7 4 0; North Sea: 3 56 3 3.5 0; Sea of Japan: 135 40 4 4.5 -35;
    Yellow Sea: 122.5 36 2.2 3.5 0; Gulf of Carpentaria: 139.5 -13 2.5 4 0; Great Australian Bight: 130 -35 8 2 0
"""
_LAKES = """
    Caspian: 50.5 42 2.2 4.8 0; Superior: -87.5 47.6 3 0.9 0; Michigan: -87 44 0.6 2.2 0; Huron: -82.3 44.8 1.2 1.3 0;
    Erie: -81.2 42.2 2 0.45 0; Ontario: -77.8 43.6 1.3 0.4 0; Victoria: 33 -1 1.4 1.4 0; Baikal: 108 53.5 0.7 3 -54;
    Ladoga: 31.5 61 1 0.7 0; Tanganyika: 29.5 -6 0.4 3 0
"""
# Fixed departures from the zonal mean SST: lon, lat, lon scale, lat scale (deg), amplitude (K).
_SST_PATTERNS = """
    warm pool: 150 0 30 12 1.5; cold tongue: -110 -2 25 4 -3; Humboldt: -82 -15 6 12 -2.5; California: -122 32 6 10 -2;
    Benguela: 12 -22 5 10 -2.5; Canary: -17 22 5 8 -2; Sargasso: -70 28 12 8 1.5; Kuroshio: 130 28 10 8 1.5;
    North Atlantic Drift: -10 55 15 8 2.5; Norwegian Current: 10 68 12 6 3.5
"""
# Zonal annual-mean "raw" SST (deg C, below freezing means ice) and seasonal amplitude, by latitude.
_SST_LAT = np.array([-90, -75, -68, -60, -50, -40, -30, -20, -10, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90.0])
_SST_MEAN = np.array([-4, -3, -1.5, 1, 6.5, 13.5, 19.5, 24, 26.5, 27.3, 27.8, 26, 22, 16, 9, 5, 0.5, -2.5, -4.5])
_SST_AMPLITUDE = np.array([2, 2, 2.5, 2.5, 3, 3.5, 2.6, 1.4, 0.8, 0.6, 0.8, 1.5, 2.8, 3.8, 3.5, 2.5, 2.5, 2, 2])
# Eddy-rich regions: lon min, lon max, lat min, lat max, share of the eddies, amplitude (K).
_EDDY_REGIONS = """
    everywhere: -180 180 -55 55 0.45 0.5; Gulf Stream: -75 -40 33 45 0.12 2.0; Kuroshio: 140 175 30 42 0.1 1.6;
    Antarctic Circumpolar Current: -180 180 -58 -42 0.2 1.2; Agulhas: 10 40 -45 -35 0.07 1.8;
    East Australian Current: 150 160 -38 -28 0.06 1.2
"""
_EDDY_SLOTS = 700


@dataclass(frozen=True)
class Grid:
    """A regular global lat/lon grid of cell centres, south to north and west to east from -180."""

    step: float

    @property
    def lat(self) -> FloatArray:
        return np.linspace(-90 + self.step / 2, 90 - self.step / 2, round(180 / self.step))

    @property
    def lon(self) -> FloatArray:
        return np.linspace(-180 + self.step / 2, 180 - self.step / 2, round(360 / self.step))

    @property
    def shape(self) -> tuple[int, int]:
        return round(180 / self.step), round(360 / self.step)

    def index(self, lat: FloatArray, lon: FloatArray) -> tuple[IntArray, IntArray]:
        """Row and column of the cells holding each point (nearest neighbour)."""
        rows = np.clip(np.floor((lat + 90) / self.step), 0, self.shape[0] - 1).astype(np.int64)
        cols = np.floor((lon + 180) / self.step).astype(np.int64) % self.shape[1]
        return rows, cols


def hashed_uniform(seed: int, *keys: npt.ArrayLike) -> FloatArray:
    """Uniform numbers in [0, 1) that depend only on the seed and the (broadcast) integer keys."""
    arrays = [np.asarray(key, dtype=np.int64) for key in keys]
    state = np.full(np.broadcast_shapes(*(a.shape for a in arrays)), seed, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        for key in arrays:
            state = _splitmix64(state ^ key.view(np.uint64))
    return (state >> np.uint64(11)).astype(np.float64) / float(2**53)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def wrap_lon(lon: FloatArray) -> FloatArray:
    """Longitudes brought into [-180, 180)."""
    return np.asarray((lon + 180.0) % 360.0 - 180.0, dtype=np.float64)


def interp_axis(
    field: FloatArray, src: FloatArray, dst: FloatArray, axis: int, period: float = 0.0, smooth: bool = False
) -> FloatArray:
    """Linear interpolation of `field` along one axis; periodic when `period` is given (longitudes); with
    `smooth`, a smoothstep between the knots instead of a straight line (no kinks in value noise)."""
    if period:
        field = np.concatenate([field, np.take(field, [0], axis=axis)], axis=axis)
        src = np.append(src, src[0] + period)
        dst = src[0] + (dst - src[0]) % period
    left = np.clip(np.searchsorted(src, dst) - 1, 0, len(src) - 2)
    weight = np.clip((dst - src[left]) / (src[left + 1] - src[left]), 0.0, 1.0)
    if smooth:
        weight = weight * weight * (3 - 2 * weight)
    shape = [1] * field.ndim
    shape[axis] = len(dst)
    weight = weight.reshape(shape)
    low, high = np.take(field, left, axis=axis), np.take(field, left + 1, axis=axis)
    return np.asarray(low + (high - low) * weight, dtype=np.float64)


def regrid(field: FloatArray, source: Grid, target: Grid, smooth: bool = False) -> FloatArray:
    """Bilinear interpolation between two global grids."""
    rows = interp_axis(field, source.lat, target.lat, axis=0, smooth=smooth)
    return interp_axis(rows, source.lon, target.lon, axis=1, period=360.0, smooth=smooth)


def value_noise(grid: Grid, seed: int, key: int, scales: tuple[float, ...] = (4.0, 2.0, 1.0)) -> FloatArray:
    """Static multi-octave value noise (random knots every `scale` degrees, smoothly joined)."""
    rng = np.random.default_rng([seed, key])
    total = np.zeros(grid.shape)
    for octave, scale in enumerate(scales):
        knots = Grid(scale)
        total += 0.5**octave * regrid(rng.normal(size=knots.shape), knots, grid, smooth=True)
    return total


def wave_noise(grid: Grid, seed: int, key: int, modes: int, max_wavenumber: int, time: float = 0.0) -> FloatArray:
    """Smooth noise of unit variance: a sum of seeded plane waves in lon/lat, drifting with `time` (days)."""
    draws = hashed_uniform(seed, key, np.arange(modes)[:, None], np.arange(4))
    m = np.floor(1 + draws[:, 0] * max_wavenumber)  # integer wavenumbers keep the field periodic in lon
    n = (draws[:, 1] - 0.5) * 2 * max_wavenumber
    phase = 2 * np.pi * draws[:, 2] + 2 * np.pi * time / (15 + 60 * draws[:, 3])
    along_lat = n[None, :] * np.radians(grid.lat)[:, None] + phase[None, :]
    along_lon = m[:, None] * np.radians(grid.lon)[None, :]
    # cos(a + b) = cos a cos b - sin a sin b: two matrix products instead of `modes` full-grid cosines (einsum's
    # own loop rather than BLAS, whose spinning threads would compete with the writer thread for small gains)
    cosines = np.einsum("lk,kn->ln", np.cos(along_lat), np.cos(along_lon))
    total = cosines - np.einsum("lk,kn->ln", np.sin(along_lat), np.sin(along_lon))
    return np.asarray(total * math.sqrt(2.0 / modes), dtype=np.float64)


@dataclass(frozen=True)
class Earth:
    """Static fields shared by every day of a build: the L4 grid, land and lakes, fixed SST patterns."""

    seed: int
    grid: Grid
    land: BoolArray
    lake: BoolArray
    sst_pattern: FloatArray


def make_earth(seed: int, step: float = 0.25) -> Earth:
    """Build the static fields once: a procedural land mask shaped like the continents, and SST patterns."""
    coarse = Grid(0.5)
    lat, lon = np.meshgrid(coarse.lat, coarse.lon, indexing="ij")
    continents = regrid(_SKETCH[::-1].astype(np.float64), Grid(5.0), coarse) - 0.5  # positive on land
    islands, seas = _ellipses(lat, lon, _table(_ISLANDS)), _ellipses(lat, lon, _table(_SEAS))
    landness = np.minimum(np.maximum(continents, 0.5 * islands), -0.5 * seas) + 0.12 * value_noise(coarse, seed, 1)
    lakes = _ellipses(lat, lon, _table(_LAKES)) + 0.15 * value_noise(coarse, seed, 2)
    grid = Grid(step)
    lake = (regrid(lakes, coarse, grid) > 0) & (regrid(landness, coarse, grid) > -0.2)
    land = (regrid(landness, coarse, grid) > 0) & ~lake
    return Earth(seed, grid, land, lake, _sst_pattern(grid))


def sketch_land(lat: FloatArray, lon: FloatArray) -> BoolArray:
    """Land in the 5-degree sketch of the continents: a rough but instant land test (no grid needed)."""
    rows = np.clip(((90 - lat) // 5).astype(np.int64), 0, len(_WORLD) - 1)
    cols = ((lon + 180) // 5).astype(np.int64) % len(_WORLD[0])
    return np.asarray(_SKETCH[rows, cols], dtype=np.bool_)


def _table(text: str) -> list[tuple[float, ...]]:
    """The numbers of `name: number number ...;` entries."""
    return [tuple(float(x) for x in entry.split(":")[1].split()) for entry in text.split(";")]


def _ellipses(lat: FloatArray, lon: FloatArray, shapes: list[tuple[float, ...]]) -> FloatArray:
    """Largest of 1 - r^2 over the ellipses: positive inside one of them."""
    best = np.full(lat.shape, -np.inf)
    for lon0, lat0, half_width, half_height, rotation in shapes:
        dx, dy = wrap_lon(lon - lon0), lat - lat0
        cos, sin = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
        r2 = ((dx * cos + dy * sin) / half_width) ** 2 + ((dy * cos - dx * sin) / half_height) ** 2
        best = np.maximum(best, 1 - r2)
    return best


def _sst_pattern(grid: Grid) -> FloatArray:
    """Fixed departures from the zonal mean (K): warm pool, cold tongue, eastern upwellings, warm western sides."""
    lat, lon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    total = np.zeros(grid.shape)
    for lon0, lat0, lon_scale, lat_scale, amplitude in _table(_SST_PATTERNS):
        total += amplitude * np.exp(-((wrap_lon(lon - lon0) / lon_scale) ** 2) - ((lat - lat0) / lat_scale) ** 2)
    return total


def days_since_epoch(moment: dt.datetime) -> float:
    """Fractional days since the GHRSST epoch, the clock of every moving feature."""
    return (moment - EPOCH).total_seconds() / 86400.0


@dataclass(frozen=True)
class SstAnalysis:
    """One day of the L4 analysis on the earth grid (NaN over land)."""

    sst: FloatArray  # foundation temperature, kelvin
    error: FloatArray  # kelvin
    ice: FloatArray  # area fraction 0..1
    mask: npt.NDArray[np.int8]  # GDS2 bits: 1 water, 2 land, 4 lake, 8 sea ice


def sst_analysis(earth: Earth, day: dt.date) -> SstAnalysis:
    """The foundation SST, its error, sea ice and mask for one day (valid at 12:00 UTC)."""
    t = days_since_epoch(dt.datetime.combine(day, dt.time(12)))
    grid = earth.grid
    raw = _zonal_sst(grid.lat, day.timetuple().tm_yday)[:, None] + earth.sst_pattern
    raw += 0.5 * regrid(wave_noise(Grid(2.0), earth.seed, 3, 24, 8, t), Grid(2.0), grid)
    _add_fronts(raw, grid, t, earth.seed)
    raw += _eddies(grid, t, earth.seed)
    ice = np.clip((-1.2 - raw) / 2.0, 0.0, 1.0)
    sst_c = np.maximum(raw * (1 - ice) + FREEZING_C * ice, FREEZING_C)
    error = _analysis_error(sst_c, ice, grid, t, earth.seed)
    mask = np.where(earth.land, 2, np.where(earth.lake, 5, 1)) + np.where(ice > 0.15, 8, 0) * ~earth.land
    nan_on_land = np.where(earth.land, np.nan, 1.0)
    return SstAnalysis(
        sst=(sst_c + KELVIN) * nan_on_land,
        error=error * nan_on_land,
        ice=ice * nan_on_land,
        mask=mask.astype(np.int8),
    )


def _zonal_sst(lat: FloatArray, day_of_year: int) -> FloatArray:
    """Zonal mean with a seasonal cycle peaking in August in the north and in February in the south."""
    season = np.cos(2 * np.pi * (day_of_year - 225) / 365.25) * np.tanh(lat / 8)  # opposite phases, no step at 0
    return np.asarray(np.interp(lat, _SST_LAT, _SST_MEAN) + np.interp(lat, _SST_LAT, _SST_AMPLITUDE) * season)


def _add_fronts(raw: FloatArray, grid: Grid, t: float, seed: int) -> None:
    """Sharp meandering fronts (Gulf Stream, Kuroshio, Antarctic polar front), computed in their boxes only."""
    fronts = (  # lon west, lon east, lat at west, lat at east, temperature step (K), width (deg)
        (-76.0, -40.0, 35.0, 41.0, 7.0, 0.35),
        (141.0, 175.0, 35.0, 37.0, 5.0, 0.4),
        (-180.0, 180.0, -51.0, -51.0, 3.5, 0.5),
    )
    for number, (west, east, lat_west, lat_east, step, width) in enumerate(fronts):
        cols = np.flatnonzero((grid.lon >= west) & (grid.lon <= east))
        lon = grid.lon[cols]
        draws = hashed_uniform(seed, 10 + number, np.arange(3)[:, None], np.arange(2))
        axis = lat_west + (lat_east - lat_west) * (lon - west) / (east - west)
        for wavelength, amplitude, (phase, speed) in zip((25.0, 11.0, 6.0), (1.2, 0.7, 0.35), draws, strict=True):
            axis += amplitude * np.sin(2 * np.pi * ((lon - (0.05 + 0.15 * speed) * t) / wavelength + phase))
        taper = np.clip(np.minimum(lon - west, east - lon) / 8.0, 0.0, 1.0) if east - west < 360 else 1.0
        taper = taper * taper * (3 - 2 * taper)
        rows = np.flatnonzero(np.abs(grid.lat - (lat_west + lat_east) / 2) < 14)
        distance = (grid.lat[rows][:, None] - axis[None, :]) / width
        bump = -0.5 * step * np.tanh(distance) * np.exp(-((distance * width / 6) ** 2)) * taper
        raw[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] += np.sign(axis.mean()) * bump


def _eddies(grid: Grid, t: float, seed: int) -> FloatArray:
    """Gaussian warm- and cold-core eddies that are born, drift westward and die; summed patch by patch."""
    slot = np.arange(_EDDY_SLOTS)
    life = 30 + 120 * hashed_uniform(seed, 20, slot)  # days
    clock = t + life * hashed_uniform(seed, 21, slot)
    cycle = np.floor(clock / life)  # each slot holds a new eddy every life
    age = clock - cycle * life
    draw = hashed_uniform(seed, 22, slot[:, None], cycle.astype(np.int64)[:, None], np.arange(6))
    regions = np.array(_table(_EDDY_REGIONS))
    region = regions[np.searchsorted(np.cumsum(regions[:, 4]), draw[:, 0] * regions[:, 4].sum())]
    lat0 = region[:, 2] + (region[:, 3] - region[:, 2]) * draw[:, 1]
    sign = np.where(draw[:, 3] < 0.5, 1.0, -1.0)
    lat = lat0 - sign * np.sign(lat0) * 0.01 * age  # cold cyclones drift poleward, warm ones equatorward
    speed = 0.04 + 0.2 * np.exp(-((lat0 / 25) ** 2))  # deg/day, faster at low latitudes like Rossby waves
    lon = wrap_lon(region[:, 0] + (region[:, 1] - region[:, 0]) * draw[:, 2] - speed * age)
    amplitude = sign * region[:, 5] * (0.5 + draw[:, 4]) * np.sin(np.pi * age / life)
    radius = np.clip(1.3 - 0.015 * np.abs(lat), 0.45, 1.3) * (0.7 + 0.6 * draw[:, 5])
    return _gaussians(grid, lat, lon, amplitude, radius)


def _gaussians(
    grid: Grid, lat: FloatArray, lon: FloatArray, amplitude: FloatArray, radius: FloatArray, half: int = 12
) -> FloatArray:
    """Sum of Gaussian bumps, each evaluated on a (2 half + 1)^2 cell patch around its centre only."""
    rows, cols = grid.index(lat, lon)
    offsets = np.arange(-half, half + 1)
    patch_rows = rows[:, None, None] + offsets[None, :, None]
    patch_cols = (cols[:, None, None] + offsets[None, None, :]) % grid.shape[1]
    inside = (patch_rows >= 0) & (patch_rows < grid.shape[0])
    patch_rows = np.clip(patch_rows, 0, grid.shape[0] - 1)
    dlat = grid.lat[patch_rows] - lat[:, None, None]
    dlon = wrap_lon(grid.lon[patch_cols] - lon[:, None, None]) * np.cos(np.radians(lat))[:, None, None]
    values = amplitude[:, None, None] * np.exp(-(dlat**2 + dlon**2) / radius[:, None, None] ** 2) * inside
    flat = (patch_rows * grid.shape[1] + patch_cols).ravel()
    total = np.bincount(flat, weights=values.ravel(), minlength=grid.shape[0] * grid.shape[1])
    return np.asarray(total.reshape(grid.shape), dtype=np.float64)


def _analysis_error(sst_c: FloatArray, ice: FloatArray, grid: Grid, t: float, seed: int) -> FloatArray:
    """Larger where the field is sharp (fronts, eddies), at the ice edge and under persistent clouds."""
    gradient = np.hypot(np.gradient(sst_c, axis=0), np.gradient(sst_c, axis=1))
    clouds = regrid(wave_noise(Grid(2.0), seed, 4, 24, 12, t), Grid(2.0), grid)
    ice_edge = 4 * ice * (1 - ice)
    return np.asarray(0.3 + 0.08 * clouds + 0.25 * np.minimum(gradient, 2.0) + 0.4 * ice_edge).clip(0.1, 2.0)
