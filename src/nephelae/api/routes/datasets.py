"""`/api/v1/datasets`: the datasets a caller may read, and spatio-temporal search over their granules.

A dataset is readable when it is public, belongs to one of the caller's projects, or is theirs; admins read all.
Search inputs (bbox, datetime, cursor) are parsed once by `nephelae.catalog.query`: a malformed one is a 400.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from nephelae.accounts.registry import IDENTIFIER
from nephelae.api.auth import Authenticated
from nephelae.api.catalog_schemas import DatasetDetail, DatasetSummary, GranulePage, GranuleSummary, Link
from nephelae.api.deps import SessionDep, SettingsDep
from nephelae.catalog.datasets import list_datasets, readable_dataset
from nephelae.catalog.query import parse_bbox, parse_interval
from nephelae.catalog.search import MAX_LIMIT, search_granules
from nephelae.config import Settings

router = APIRouter(prefix="/datasets", tags=["catalog"])

DatasetId = Annotated[str, Path(pattern=f"^{IDENTIFIER.pattern}$", description="The dataset's id.")]


@router.get("", summary="List datasets")
def list_readable_datasets(principal: Authenticated, session: SessionDep) -> list[DatasetSummary]:
    """The datasets the caller may read, by id, with the summary kept by their last indexing."""
    return [DatasetSummary.of(dataset) for dataset in list_datasets(session, principal)]


@router.get("/{dataset_id}", summary="Show a dataset", response_model_exclude_unset=True)
def show_dataset(dataset_id: DatasetId, principal: Authenticated, session: SessionDep) -> DatasetDetail:
    """One dataset: 404 if there is no such dataset, 403 if the caller may not read it.

    Admins also see where it is stored (`root`, `pattern`); nobody else learns the server's paths.
    """
    dataset = readable_dataset(session, principal, dataset_id)
    return DatasetDetail.of_dataset(dataset, for_admin=principal.is_admin)


@router.get("/{dataset_id}/granules", summary="Search granules")
def search_dataset_granules(
    dataset_id: DatasetId,
    principal: Authenticated,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    bbox: Annotated[
        str | None, Query(max_length=200, description="W,S,E,N in degrees; W > E crosses the antimeridian.")
    ] = None,
    datetime: Annotated[
        str | None,
        Query(max_length=100, description="An RFC 3339 instant, or START/END where either end may be `..`."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Granules per page.")] = 100,
    cursor: Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page.")] = None,
) -> GranulePage:
    """Readable granules intersecting the box and the time interval, in (time_start, id) order, a page at a time."""
    readable_dataset(session, principal, dataset_id)
    page = search_granules(
        session, dataset_id, bbox=parse_bbox(bbox), interval=parse_interval(datetime), limit=limit, cursor=cursor
    )
    links = [Link(rel="next", href=_page_url(request, settings, page.next_cursor))] if page.next_cursor else []
    granules = [GranuleSummary.of(granule) for granule in page.granules]
    return GranulePage(granules=granules, next_cursor=page.next_cursor, links=links)


def _page_url(request: Request, settings: Settings, cursor: str) -> str:
    """This request's URL with another cursor, at the address users reach the server (behind a proxy too)."""
    url = request.url.include_query_params(cursor=cursor)
    if settings.public_url:
        return f"{settings.public_url.rstrip('/')}{url.path}?{url.query}"
    return str(url)
