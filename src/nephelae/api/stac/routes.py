"""The STAC API routes: landing page, conformance, collections, their items, and item search (GET and POST).

Every route takes the same access checks as `/api/v1` (bearer token, allowed networks, approved account) and shows
only the collections the caller may read. Each parses, authorises, calls the catalog and converts, nothing more.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from nephelae.api.auth import Authenticated
from nephelae.api.deps import SessionDep, SettingsDep
from nephelae.api.stac.item_ids import ItemNamer
from nephelae.api.stac.items import dataset_collection, feature_collection, granule_item
from nephelae.api.stac.links import (
    GEOJSON,
    GeoJSONResponse,
    StacUrls,
    conformance,
    landing_page,
    link,
    next_link_get,
    next_link_post,
    stac_urls,
    with_query,
)
from nephelae.api.stac.params import (
    ITEM_PARAMETERS,
    SEARCH_PARAMETERS,
    ItemQuery,
    SearchBody,
    parse_search_body,
    query_from_body,
    query_from_get,
)
from nephelae.api.stac.search import Found, find_item, search_items, searchable_datasets
from nephelae.catalog.datasets import list_datasets, readable_dataset

router = APIRouter(prefix="/stac", tags=["stac"])

CollectionId = Annotated[str, Path(max_length=128, description="A collection (dataset) id.")]
ItemId = Annotated[str, Path(max_length=1024, description="An item id: the granule's file name without extension.")]
BBoxParameter = Annotated[str | None, Query(description="W,S,E,N in degrees; W > E crosses the antimeridian.")]
DatetimeParameter = Annotated[
    str | None, Query(description="RFC 3339 instant or interval START/END, '..' for an open end.")
]
LimitParameter = Annotated[str | None, Query(description="Items per page, 1 and up (at most 1000 are returned).")]
TokenParameter = Annotated[str | None, Query(description="Where the next page starts: from a `next` link.")]


def item_namer(request: Request) -> ItemNamer:
    """One per app, so that the naming of each dataset's items is worked out once per indexing."""
    state = request.app.state
    if not hasattr(state, "stac_item_namer"):
        state.stac_item_namer = ItemNamer()
    namer: ItemNamer = state.stac_item_namer
    return namer


def item_parameters(
    request: Request,
    bbox: BBoxParameter = None,
    datetime: DatetimeParameter = None,
    limit: LimitParameter = None,
    token: TokenParameter = None,
) -> ItemQuery:
    """The OGC API Features parameters of `/collections/{id}/items`."""
    given = request.query_params.keys()
    return query_from_get(given, ITEM_PARAMETERS, bbox=bbox, datetime=datetime, limit=limit, token=token)


def search_parameters(
    request: Request,
    collections: Annotated[str | None, Query(description="Comma-separated; every readable one when absent.")] = None,
    ids: Annotated[str | None, Query(description="Comma-separated item ids.")] = None,
    bbox: BBoxParameter = None,
    intersects: Annotated[str | None, Query(description="A GeoJSON geometry (answered by its bbox).")] = None,
    datetime: DatetimeParameter = None,
    limit: LimitParameter = None,
    token: TokenParameter = None,
) -> ItemQuery:
    """The item-search parameters of `GET /search`."""
    values = {"collections": collections, "ids": ids, "bbox": bbox, "intersects": intersects, "datetime": datetime}
    return query_from_get(request.query_params.keys(), SEARCH_PARAMETERS, limit=limit, token=token, **values)


async def search_body(request: Request) -> SearchBody:
    """The body of `POST /search`, read here so that a malformed one is a 400 like any other bad parameter."""
    return parse_search_body(await request.body())


Urls = Annotated[StacUrls, Depends(stac_urls)]
Namer = Annotated[ItemNamer, Depends(item_namer)]
ItemsQuery = Annotated[ItemQuery, Depends(item_parameters)]
SearchQuery = Annotated[ItemQuery, Depends(search_parameters)]
SearchBodyDep = Annotated[SearchBody, Depends(search_body)]


@router.get("", summary="STAC landing page")
@router.get("/", include_in_schema=False)
def landing(principal: Authenticated, session: SessionDep, settings: SettingsDep, urls: Urls) -> JSONResponse:
    """The root Catalog: conformance classes, links to collections and search, a child per readable collection."""
    return JSONResponse(landing_page(settings, urls, list_datasets(session, principal)))


@router.get("/conformance", summary="STAC conformance classes")
def conformance_classes(_principal: Authenticated) -> JSONResponse:
    return JSONResponse(conformance())


@router.get("/collections", summary="STAC collections")
def collections(principal: Authenticated, session: SessionDep, settings: SettingsDep, urls: Urls) -> JSONResponse:
    """The datasets the caller may read, as Collections."""
    datasets = list_datasets(session, principal)
    body = {
        "collections": [dataset_collection(dataset, urls, settings.platform_name) for dataset in datasets],
        "links": [link("self", urls.collections), link("root", urls.root)],
    }
    return JSONResponse(body)


@router.get("/collections/{collection_id}", summary="A STAC collection")
def collection(
    collection_id: CollectionId, principal: Authenticated, session: SessionDep, settings: SettingsDep, urls: Urls
) -> JSONResponse:
    """404 if there is no such dataset, 403 if the caller may not read it."""
    dataset = readable_dataset(session, principal, collection_id)
    return JSONResponse(dataset_collection(dataset, urls, settings.platform_name))


@router.get("/collections/{collection_id}/items", response_class=GeoJSONResponse, summary="Items of a collection")
def collection_items(
    collection_id: CollectionId,
    principal: Authenticated,
    session: SessionDep,
    request: Request,
    urls: Urls,
    namer: Namer,
    query: ItemsQuery,
) -> GeoJSONResponse:
    """The collection's granules as Items, in time order, filtered by `bbox` and `datetime`, in pages."""
    dataset = readable_dataset(session, principal, collection_id)
    found = search_items(session, [dataset], query, namer)
    url, parameters = urls.items(collection_id), dict(request.query_params)
    links = [link("self", with_query(url, parameters), GEOJSON), link("root", urls.root)]
    links.append(link("collection", urls.collection(collection_id)))
    next_link = next_link_get(url, parameters, found.next_token) if found.next_token else None
    return _page(found, urls, links, next_link)


@router.get("/collections/{collection_id}/items/{item_id}", response_class=GeoJSONResponse, summary="An item")
def item(
    collection_id: CollectionId,
    item_id: ItemId,
    principal: Authenticated,
    session: SessionDep,
    urls: Urls,
    namer: Namer,
) -> GeoJSONResponse:
    dataset = readable_dataset(session, principal, collection_id)
    match = find_item(session, dataset, item_id, namer)
    return GeoJSONResponse(granule_item(match.dataset, match.granule, match.item_id, urls))


@router.get("/search", response_class=GeoJSONResponse, summary="Search items (GET)")
def search_get(
    principal: Authenticated, session: SessionDep, request: Request, urls: Urls, namer: Namer, query: SearchQuery
) -> GeoJSONResponse:
    """Items of the readable collections (or of those named) matching every filter given, in pages."""
    found = search_items(session, searchable_datasets(session, principal, query.collections), query, namer)
    parameters = dict(request.query_params)
    links = [link("self", with_query(urls.search, parameters), GEOJSON), link("root", urls.root)]
    next_link = next_link_get(urls.search, parameters, found.next_token) if found.next_token else None
    return _page(found, urls, links, next_link)


@router.post(
    "/search",
    response_class=GeoJSONResponse,
    summary="Search items (POST)",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": SearchBody.model_json_schema()}}}},
)
def search_post(
    principal: Authenticated, session: SessionDep, urls: Urls, namer: Namer, body: SearchBodyDep
) -> GeoJSONResponse:
    """As `GET /search`, the parameters in a JSON body; the `next` link says which body to POST for the next page."""
    query = query_from_body(body)
    found = search_items(session, searchable_datasets(session, principal, query.collections), query, namer)
    sent = body.model_dump(exclude_none=True)
    next_link = next_link_post(urls.search, sent, found.next_token) if found.next_token else None
    return _page(found, urls, [link("root", urls.root)], next_link)


def _page(
    found: Found, urls: StacUrls, links: list[dict[str, Any]], next_link: dict[str, Any] | None
) -> GeoJSONResponse:
    features = [granule_item(match.dataset, match.granule, match.item_id, urls) for match in found.matches]
    return GeoJSONResponse(feature_collection(features, links + ([next_link] if next_link else [])))
