"""Nephelae: a remote processing platform for Earth-observation archives."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nephelae")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
