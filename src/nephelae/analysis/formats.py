"""The output formats of each analysis, by name (CLI, client) and media type (HTTP Accept)."""

from __future__ import annotations

from typing import Literal

from nephelae.errors import InvalidInput

Format = Literal["json", "csv", "netcdf", "png"]

MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json",
    "csv": "text/csv",
    "netcdf": "application/x-netcdf",
    "png": "image/png",
}
EXTENSIONS: dict[Format, str] = {"json": "json", "csv": "csv", "netcdf": "nc", "png": "png"}

# Each operation's formats, its default first.
FORMATS: dict[str, tuple[Format, ...]] = {
    "timeseries": ("json", "csv", "netcdf", "png"),
    "subset": ("netcdf",),
    "climatology": ("netcdf",),
    "map": ("png", "netcdf"),
}


def check_format(operation: str, name: str) -> Format:
    """The format `name` if `operation` can produce it, else `InvalidInput` listing those it can."""
    allowed = FORMATS.get(operation, ())
    if name not in allowed:
        raise InvalidInput(f"{operation} answers in {', '.join(allowed)}, not {name!r}")
    return name  # one of the allowed literals (mypy narrows `in` on a tuple of literals)


def negotiate(operation: str, accept: str | None) -> Format | None:
    """The format an Accept header picks for `operation` (its default for none or */*); None if none is acceptable.

    Media ranges are taken in order of their q-values (RFC 9110); `type/*` matches any subtype.
    """
    allowed = FORMATS[operation]
    if not accept or not accept.strip():
        return allowed[0]
    for media_range in _ranked(accept):
        if media_range in ("*/*", "*"):
            return allowed[0]
        for name in allowed:
            media = MEDIA_TYPES[name]
            if media_range == media or (media_range.endswith("/*") and media.startswith(media_range[:-1])):
                return name
        if media_range in ("application/netcdf", "application/x-netcdf4") and "netcdf" in allowed:
            return "netcdf"
    return None


def _ranked(accept: str) -> list[str]:
    ranges: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept.split(",")):
        media, _, parameters = item.partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.strip() and quality > 0:
            ranges.append((-quality, position, media.strip().lower()))
    return [media for _, _, media in sorted(ranges)]
