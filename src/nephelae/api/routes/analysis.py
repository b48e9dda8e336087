"""`/api/v1/analysis/{subset|timeseries|climatology|map}`: small analyses answered synchronously.

The Accept header picks the format (JSON, CSV, NetCDF, PNG; each operation has a default, 406 for one it cannot
give). A request too large to answer within seconds is refused (413 `request_too_large`) with the campaign to run
instead. The work is blocking (file reads, NumPy): these are `def` routes, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Header, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from nephelae.analysis.formats import FORMATS, MEDIA_TYPES, negotiate
from nephelae.analysis.outputs import Rendered
from nephelae.analysis.service import analyse, prepare_workers
from nephelae.api.analysis_schemas import AnalysisBody
from nephelae.api.auth import Authenticated
from nephelae.api.deps import SessionDep, SettingsDep


@asynccontextmanager
async def _start_workers(app: FastAPI) -> AsyncIterator[None]:
    """With the server, start the time-series worker processes if the catalog is large enough to need them."""
    with app.state.sessions() as session:
        await asyncio.to_thread(prepare_workers, session)
    yield


router = APIRouter(prefix="/analysis", tags=["analysis"], lifespan=_start_workers)

_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The result, in the format the Accept header picked.",
        "content": {media: {} for media in MEDIA_TYPES.values()},
    }
}


@router.post("/{operation}", summary="Run a small analysis", response_class=Response, responses=_ANSWERS)
def run_analysis(
    operation: Literal["subset", "timeseries", "climatology", "map"],
    body: AnalysisBody,
    principal: Authenticated,
    session: SessionDep,
    settings: SettingsDep,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Formats: timeseries JSON (default), CSV, NetCDF, PNG; subset and climatology NetCDF; map PNG or NetCDF."""
    chosen = negotiate(operation, accept)
    if chosen is None:
        offered = ", ".join(MEDIA_TYPES[name] for name in FORMATS[operation])
        raise HTTPException(406, f"{operation} answers {offered}, not {accept}; set the Accept header to one")
    return _response(analyse(session, principal, settings, body.to_request(operation), chosen))


def _response(rendered: Rendered) -> Response:
    disposition = {"Content-Disposition": f'attachment; filename="{rendered.filename}"'}
    if rendered.path is not None:
        path = rendered.path
        return FileResponse(
            path, media_type=rendered.media_type, headers=disposition, background=BackgroundTask(path.unlink)
        )
    return Response(rendered.content or b"", media_type=rendered.media_type, headers=disposition)
