"""The wire shape of an analysis request, as `POST /api/v1/analysis/{operation}` takes it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from nephelae.accounts.registry import IDENTIFIER
from nephelae.analysis.request import MAX_VARIABLES, AnalysisRequest, build_request

VariableName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]


class AnalysisBody(BaseModel):
    """What to analyse: a dataset, its variables, a box and a time interval (both optional: everything)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=f"^{IDENTIFIER.pattern}$", description="The dataset's id.")
    variables: list[VariableName] = Field(
        min_length=1, max_length=MAX_VARIABLES, description='Variables to analyse, e.g. ["analysed_sst"].'
    )
    bbox: list[float] | str | None = Field(
        None, description="[W, S, E, N] in degrees (or the text W,S,E,N); W > E crosses the antimeridian."
    )
    time: str | None = Field(
        None, max_length=100, description="RFC 3339 START/END (an end may be `..`), or one instant."
    )
    period: Literal["month", "dayofyear"] = Field("month", description="Climatology only: the period of the means.")

    def to_request(self, operation: str) -> AnalysisRequest:
        """The checked request (a malformed box or interval is a 400 `invalid_input`)."""
        return build_request(
            operation, self.dataset, self.variables, bbox=self.bbox, time=self.time, period=self.period
        )
