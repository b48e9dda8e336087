"""The toolbox: pure xarray operations (datasets in, datasets out). It knows no database and no web."""

from nephelae.toolbox.binning import bin_l2p
from nephelae.toolbox.climatology import anomaly, climatology, resample_time
from nephelae.toolbox.fluxes import heat_fluxes
from nephelae.toolbox.matchup import matchups
from nephelae.toolbox.quicklook import map_png, timeseries_png
from nephelae.toolbox.subset import latitude_name, longitude_name, subset
from nephelae.toolbox.timeseries import area_mean, point_series

__all__ = [
    "anomaly",
    "area_mean",
    "bin_l2p",
    "climatology",
    "heat_fluxes",
    "latitude_name",
    "longitude_name",
    "map_png",
    "matchups",
    "point_series",
    "resample_time",
    "subset",
    "timeseries_png",
]
