"""`Client.analysis`: the analysis API (`/api/v1/analysis/...`): small results computed next to the archive.

    series = nephelae.analysis.timeseries("demo-l4-sst", "analysed_sst", bbox=(-60, -20, 0, 20),
                                          time="2020-01-01/2020-01-31")
    for point in series["points"]: print(point["time"], point["value"])
    Path("box.nc").write_bytes(nephelae.analysis.subset("demo-l4-sst", ["analysed_sst"], bbox="-10,40,10,50"))

A request too large to answer within seconds raises `RequestTooLarge`, whose detail says which campaign to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

from nephelae.client.transport import Transport
from nephelae.client.wire import BBoxLike, DatetimeLike, bbox_param, datetime_param
from nephelae.errors import InvalidInput

Format = Literal["json", "csv", "netcdf", "png"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv",
    "netcdf": "application/x-netcdf",
    "png": "image/png",
}


class Analysis:
    """Synchronous analyses of a dataset; reached as `Client.analysis`.

    `variables` is one name or several; `bbox` is (W, S, E, N) or "W,S,E,N" (W > E crosses the antimeridian);
    `time` an RFC 3339 instant or "START/END", a datetime or a (start, end) pair. Results are bytes of the format
    asked for, except JSON, which is decoded.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def timeseries(
        self,
        dataset: str,
        variables: str | Sequence[str],
        *,
        bbox: BBoxLike | None = None,
        time: DatetimeLike | None = None,
        format: Format = "json",
    ) -> Any:
        """The cos-latitude weighted mean over the box per time step.

        JSON (one variable): `{"variable", "units", "points": [{"time", "value"}]}`; CSV, NetCDF or PNG: bytes.
        """
        return self.run("timeseries", dataset, variables, bbox=bbox, time=time, format=format)

    def subset(
        self,
        dataset: str,
        variables: str | Sequence[str],
        *,
        bbox: BBoxLike | None = None,
        time: DatetimeLike | None = None,
    ) -> bytes:
        """The box, interval and variables of the granules as one CF-1.8 NetCDF file (bytes)."""
        return bytes(self.run("subset", dataset, variables, bbox=bbox, time=time, format="netcdf"))

    def climatology(
        self,
        dataset: str,
        variables: str | Sequence[str],
        *,
        bbox: BBoxLike | None = None,
        time: DatetimeLike | None = None,
        period: Literal["month", "dayofyear"] = "month",
    ) -> bytes:
        """The mean per month (or day of the year) over the interval, on the grid of the box, as NetCDF bytes."""
        return bytes(self.run("climatology", dataset, variables, bbox=bbox, time=time, format="netcdf", period=period))

    def map(
        self,
        dataset: str,
        variables: str | Sequence[str],
        *,
        bbox: BBoxLike | None = None,
        time: DatetimeLike | None = None,
        format: Literal["png", "netcdf"] = "png",
    ) -> bytes:
        """The time mean over the interval on the grid of the box: a PNG quicklook (one variable) or NetCDF."""
        return bytes(self.run("map", dataset, variables, bbox=bbox, time=time, format=format))

    def run(
        self,
        operation: str,
        dataset: str,
        variables: str | Sequence[str],
        *,
        bbox: BBoxLike | None = None,
        time: DatetimeLike | None = None,
        format: str = "json",
        period: str | None = None,
        decode: bool = True,
    ) -> Any:
        """Any analysis by name: decoded JSON for `format="json"` (unless `decode=False`), else the answer's bytes."""
        if format not in MEDIA_TYPES:
            raise InvalidInput(f"format {format!r} is not one of {', '.join(MEDIA_TYPES)}")
        names = [variables] if isinstance(variables, str) else list(variables)
        body: dict[str, Any] = {"dataset": dataset, "variables": names}
        body |= {"bbox": bbox_param(bbox), "time": datetime_param(time)}
        if period is not None:
            body["period"] = period
        response = self._transport.request(
            "POST",
            f"/analysis/{quote(operation, safe='')}",
            json={key: value for key, value in body.items() if value is not None},
            headers={"Accept": MEDIA_TYPES[format]},
        )
        return response.json() if format == "json" and decode else response.content
