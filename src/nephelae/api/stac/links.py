"""Where things are under `/stac`, the links between them, the landing page and the conformance classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pystac
from fastapi import Request
from fastapi.responses import JSONResponse

from nephelae.api.deps import SettingsDep
from nephelae.config import Settings
from nephelae.db.models import Dataset

JSON = pystac.MediaType.JSON.value
GEOJSON = pystac.MediaType.GEOJSON.value
HTML = pystac.MediaType.HTML.value

CONFORMANCE = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    # Not oas30: the API description is FastAPI's OpenAPI 3.1 document, so we do not claim the 3.0 class.
)


class GeoJSONResponse(JSONResponse):
    """Items and item collections are GeoJSON."""

    media_type = GEOJSON


@dataclass(frozen=True)
class StacUrls:
    """Absolute URLs of the STAC resources, from the public URL when one is set, else from the request."""

    base: str  # scheme://host[:port][/root-path], no trailing slash
    openapi_path: str
    docs_path: str

    @property
    def root(self) -> str:
        return f"{self.base}/stac"

    @property
    def collections(self) -> str:
        return f"{self.root}/collections"

    @property
    def search(self) -> str:
        return f"{self.root}/search"

    def collection(self, collection_id: str) -> str:
        return f"{self.collections}/{collection_id}"

    def items(self, collection_id: str) -> str:
        return f"{self.collection(collection_id)}/items"

    def item(self, collection_id: str, item_id: str) -> str:
        return f"{self.items(collection_id)}/{item_id}"


def stac_urls(request: Request, settings: SettingsDep) -> StacUrls:
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return StacUrls(base, request.app.openapi_url or "/openapi.json", request.app.docs_url or "/docs")


def link(rel: str, href: str, media_type: str = JSON, **extra: Any) -> dict[str, Any]:
    return {"rel": rel, "href": href, "type": media_type, **extra}


def with_query(url: str, parameters: Mapping[str, str]) -> str:
    return f"{url}?{urlencode(parameters)}" if parameters else url


def landing_page(settings: Settings, urls: StacUrls, datasets: Sequence[Dataset]) -> dict[str, Any]:
    """The root Catalog: what conforms to what, where to search, and one child per collection the caller may read."""
    catalog = pystac.Catalog(id="nephelae", title=settings.platform_name, description=settings.platform_description)
    body = catalog.to_dict(include_self_link=False, transform_hrefs=False)
    body["conformsTo"] = list(CONFORMANCE)
    body["links"] = [
        link("self", urls.root, title=settings.platform_name),
        link("root", urls.root, title=settings.platform_name),
        link("conformance", f"{urls.root}/conformance", title="STAC API conformance classes"),
        link("data", urls.collections, title="Collections"),
        link("search", urls.search, GEOJSON, method="GET", title="Item search"),
        link("search", urls.search, GEOJSON, method="POST", title="Item search"),
        # FastAPI serves its OpenAPI document as application/json; clients ask for the type we announce.
        link("service-desc", f"{urls.base}{urls.openapi_path}", JSON, title="OpenAPI description of the API"),
        link("service-doc", f"{urls.base}{urls.docs_path}", HTML, title="API documentation"),
        *(link("child", urls.collection(dataset.id), title=dataset.title) for dataset in datasets),
    ]
    return body


def conformance() -> dict[str, Any]:
    return {"conformsTo": list(CONFORMANCE)}


def next_link_get(url: str, parameters: Mapping[str, str], token: str) -> dict[str, Any]:
    """The next page of a GET: the same parameters and the token."""
    return link("next", with_query(url, {**parameters, "token": token}), GEOJSON, method="GET")


def next_link_post(url: str, body: Mapping[str, Any], token: str) -> dict[str, Any]:
    """The next page of a POST search, as STAC API item search describes it: the whole body to send, token included."""
    return link("next", url, GEOJSON, method="POST", body={**body, "token": token}, merge=False)
