"""The toolbox: pure xarray operations (datasets in, datasets out). It knows no database and no web."""

from nephelae.toolbox.subset import latitude_name, longitude_name, subset

__all__ = ["latitude_name", "longitude_name", "subset"]
