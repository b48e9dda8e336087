"""The catalog: datasets and their granules, indexed for spatio-temporal search, opened lazily as xarray."""
