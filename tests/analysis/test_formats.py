"""Content negotiation: the Accept header picks each operation's format, by q-value, with its default for */*."""

from __future__ import annotations

import pytest

from nephelae.analysis.formats import negotiate


@pytest.mark.parametrize(
    ("operation", "accept", "chosen"),
    [
        ("timeseries", None, "json"),
        ("timeseries", "*/*", "json"),
        ("timeseries", "text/csv", "csv"),
        ("timeseries", "text/html, image/*;q=0.5", "png"),
        ("timeseries", "application/json;q=0.2, application/x-netcdf", "netcdf"),
        ("timeseries", "application/netcdf", "netcdf"),
        ("subset", "application/json, */*;q=0.1", "netcdf"),
        ("map", "", "png"),
        ("map", "application/x-netcdf;q=0.9, image/png;q=0.1", "netcdf"),
        ("subset", "image/png", None),
        ("map", "text/csv, application/json", None),
        ("timeseries", "text/csv;q=0, image/png;q=nonsense", None),
    ],
)
def test_the_accept_header_picks_the_format(operation: str, accept: str | None, chosen: str | None) -> None:
    assert negotiate(operation, accept) == chosen
