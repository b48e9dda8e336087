"""PNG quicklooks of a map or a time series, drawn with matplotlib's Agg canvas and no global pyplot state."""

from __future__ import annotations

import io
import warnings
from collections.abc import Hashable
from typing import Literal

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, ScalarFormatter

from nephelae.errors import InvalidInput
from nephelae.toolbox.subset import latitude_name, longitude_name

MISSING_GREY = (0.6, 0.6, 0.6)  # land and missing cells: a neutral grey that no colour of the maps uses
MAX_CELLS = 1500  # per axis: more would not show on a quicklook and would load the whole array
# Anchors after cmocean's "thermal" (dark blue, purple, orange, yellow), kept here so nothing is fetched at run time.
_THERMAL_ANCHORS = ["#042333", "#1b3a7a", "#553b9d", "#814f8f", "#af5f82", "#de7065", "#f99242", "#f9c441", "#e8fa5b"]
THERMAL = LinearSegmentedColormap.from_list("nephelae-thermal", _THERMAL_ANCHORS)


def map_png(
    da: xr.DataArray,
    *,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | Colormap | None = None,
) -> bytes:
    """A PNG map of a 2-D latitude/longitude field (extra dimensions of length 1 are dropped).

    Missing cells (NaN: land, ice, no data) are grey; axes and colour bar are labelled with their units. Handles
    descending latitudes, 0..360 longitudes, subsets across the antimeridian and curvilinear grids. The colour
    range defaults to the 2nd..98th percentiles, so a few outliers do not wash out the picture.
    """
    field = _as_map(da)
    positions = xr.Dataset(coords=field.coords)
    lat, lon = field[latitude_name(positions)], field[longitude_name(positions)]
    values = np.asarray(field.values, dtype="float64")
    low, high = _colour_range(values, vmin, vmax)
    colours = _colormap(cmap)
    figure = Figure(figsize=(8.0, 4.8), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    if lat.ndim == 1 and lon.ndim == 1:
        image = _draw_grid(ax, field, lat, lon, values, colours, low, high)
    else:
        image = _draw_curvilinear(ax, lat, lon, values, colours, low, high)
    ax.set_facecolor("white")
    ax.set_xlabel(f"longitude ({lon.attrs.get('units', 'degrees_east')})")
    ax.set_ylabel(f"latitude ({lat.attrs.get('units', 'degrees_north')})")
    ax.xaxis.set_major_formatter(FuncFormatter(_longitude_label))
    ax.set_title(title if title is not None else _default_title(field))
    extend = _extend(values, low, high)
    figure.colorbar(image, ax=ax, shrink=0.85, label=_quantity_label(field), extend=extend)
    return _png(figure)


def _extend(values: np.ndarray, low: float, high: float) -> Literal["neither", "both", "min", "max"]:
    """Arrows on the colour bar when some values lie beyond the colour range (and are drawn in its end colours)."""
    finite = values[np.isfinite(values)]
    below, above = bool(finite.size and finite.min() < low), bool(finite.size and finite.max() > high)
    return "both" if below and above else "min" if below else "max" if above else "neither"


def _longitude_label(x: float, _: object) -> str:
    """Unwrapped longitudes (190) are labelled as the user knows them (-170); 180 stays 180."""
    wrapped = (x + 180.0) % 360.0 - 180.0
    return f"{180.0 if wrapped == -180.0 and x > 0 else wrapped:g}"


def _as_map(da: xr.DataArray) -> xr.DataArray:
    if not isinstance(da, xr.DataArray):
        raise InvalidInput("a quicklook draws one variable (an xarray DataArray), not a whole dataset")
    field = da
    for dim in da.dims:  # a time step of one, not the rows or columns of a box one cell wide
        if field.ndim > 2 and field.sizes[dim] == 1:
            field = field.squeeze(dim, drop=False)
    if field.ndim != 2:
        shape = ", ".join(f"{dim}={size}" for dim, size in field.sizes.items())
        raise InvalidInput(f"a map needs a 2-D field; {da.name} has dimensions {shape or 'none'}: select one time step")
    if not np.issubdtype(field.dtype, np.number):
        raise InvalidInput(f"cannot draw {da.name}: its values are not numbers")
    strides = {dim: max(1, -(-size // MAX_CELLS)) for dim, size in field.sizes.items()}
    return field.isel({dim: slice(None, None, step) for dim, step in strides.items()})


def _colour_range(values: np.ndarray, vmin: float | None, vmax: float | None) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, [2.0, 98.0]) if finite.size else (0.0, 1.0)
    low = float(low if vmin is None else vmin)
    high = float(high if vmax is None else vmax)
    if high <= low:
        high = low + 1.0  # a constant field still gets a colour bar
    return low, high


def _colormap(cmap: str | Colormap | None) -> Colormap:
    from matplotlib import colormaps  # the registry, not pyplot

    if cmap is None:
        base: Colormap = THERMAL
    elif isinstance(cmap, Colormap):
        base = cmap
    elif cmap in colormaps:
        base = colormaps[cmap]
    else:
        raise InvalidInput(f"unknown colour map {cmap!r}; use a matplotlib name such as viridis or RdBu_r")
    return base.with_extremes(bad=MISSING_GREY)


def _unwrapped(lon: np.ndarray) -> np.ndarray:
    """Longitudes made continuous across the antimeridian (170, 180, 190 rather than 170, 180, -170)."""
    return np.unwrap(np.asarray(lon, dtype="float64"), period=360.0, axis=-1)


def _draw_grid(
    ax: Axes,
    field: xr.DataArray,
    lat: xr.DataArray,
    lon: xr.DataArray,
    values: np.ndarray,
    colours: Colormap,
    low: float,
    high: float,
) -> ScalarMappable:
    if field.dims.index(lat.dims[0]) != 0:
        values = values.T
    x, y = _unwrapped(lon.values), np.asarray(lat.values, dtype="float64")
    if x.size > 1 and x[-1] < x[0]:
        x, values = x[::-1], values[:, ::-1]
    if y.size > 1 and y[-1] < y[0]:
        y, values = y[::-1], values[::-1, :]
    masked = np.ma.masked_invalid(values)
    if not (_regular(x) and _regular(y)):  # e.g. a Gaussian grid: cells drawn where they are, more slowly
        ax.set_aspect("equal")
        return ax.pcolormesh(x, y, masked, cmap=colours, vmin=low, vmax=high, shading="nearest")
    extent = (*_edges(x), *_edges(y))
    return ax.imshow(
        masked,
        origin="lower",
        extent=extent,
        cmap=colours,
        vmin=low,
        vmax=high,
        interpolation="nearest",
        aspect="equal",
    )


def _regular(centres: np.ndarray) -> bool:
    steps = np.diff(centres)
    return steps.size == 0 or bool(np.allclose(steps, steps[0], rtol=1e-3))


def _edges(centres: np.ndarray) -> tuple[float, float]:
    half = abs(float(centres[1] - centres[0])) / 2.0 if centres.size > 1 else 0.5
    return float(centres[0]) - half, float(centres[-1]) + half


def _draw_curvilinear(
    ax: Axes, lat: xr.DataArray, lon: xr.DataArray, values: np.ndarray, colours: Colormap, low: float, high: float
) -> ScalarMappable:
    lat2d, lon2d = xr.broadcast(lat, lon)
    x, y = _unwrapped(lon2d.values), np.asarray(lat2d.values, dtype="float64")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidInput("cannot draw a swath with missing positions: subset it to where positions are known")
    ax.set_aspect("equal")
    with warnings.catch_warnings():
        # A swath's rows run north or south as the orbit turns: matplotlib warns that they are not monotonic, but
        # the cell edges it takes half-way between centres are still right for a smooth curvilinear grid.
        warnings.filterwarnings("ignore", "The input coordinates to pcolormesh", UserWarning)
        masked = np.ma.masked_invalid(values)
        return ax.pcolormesh(x, y, masked, cmap=colours, vmin=low, vmax=high, shading="nearest")


def _quantity_label(da: xr.DataArray) -> str:
    name = str(da.attrs.get("long_name") or da.name or "value")
    units = da.attrs.get("units")
    return f"{name} ({units})" if units else name


def _default_title(da: xr.DataArray) -> str:
    label = str(da.name or da.attrs.get("long_name") or "")
    if "time" in da.coords and da["time"].size == 1 and np.issubdtype(da["time"].dtype, np.datetime64):
        label = f"{label} {np.datetime_as_string(da['time'].values, unit='m')}".strip()
    return label


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def timeseries_png(da: xr.DataArray, *, title: str | None = None) -> bytes:
    """A PNG line plot of a 1-D series (over time, or e.g. over the months of a climatology), gaps left blank."""
    if not isinstance(da, xr.DataArray):
        raise InvalidInput("a quicklook draws one variable (an xarray DataArray), not a whole dataset")
    series = da.squeeze(drop=False)
    if series.ndim != 1:
        shape = ", ".join(f"{dim}={size}" for dim, size in series.sizes.items())
        raise InvalidInput(f"a time series plot needs a 1-D series; {da.name} has dimensions {shape or 'none'}")
    dim: Hashable = series.dims[0]
    x = series[dim].values if dim in series.coords else np.arange(series.size)
    figure = Figure(figsize=(8.0, 4.0), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    ax.plot(x, np.asarray(series.values, dtype="float64"), marker="o", markersize=3, linewidth=1.2, color="#1b3a7a")
    ax.set_xlabel(str(dim))
    ax.set_ylabel(_quantity_label(series))
    ax.grid(True, alpha=0.3)
    formatter = ax.yaxis.get_major_formatter()
    if isinstance(formatter, ScalarFormatter):
        formatter.set_useOffset(False)  # 291.56 kelvin, not "+2.915e2" and 0.06
    ax.set_title(title if title is not None else str(da.name or ""))
    if np.issubdtype(np.asarray(x).dtype, np.datetime64):
        figure.autofmt_xdate()
    return _png(figure)
