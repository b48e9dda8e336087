"""A STAC API 1.0 at `/stac` over the catalog: core, collections, OGC API Features and item search.

Datasets are Collections, granules are Items (`items`), named as `item_ids` explains. The access rules are those of
`/api/v1`: a bearer token, an allowed network and an approved account on every route, and only the datasets the
caller may read (through projects, ownership or the public flag) are shown or searched.
"""

from nephelae.api.stac.routes import router

__all__ = ["router"]
