"""Item search over several collections, in pages, on top of the catalog's per-dataset `search_granules`.

Results come collection by collection (in id order), each in the catalog's (time_start, granule) order. The paging
token is opaque to clients: base64 of JSON naming the collection to resume in and the catalog's own cursor there,
or, for a search by ids (bounded by `MAX_IDS` per collection), the offset reached.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from nephelae.accounts import Principal
from nephelae.api.stac.item_ids import ItemNamer
from nephelae.api.stac.params import ItemQuery
from nephelae.catalog.datasets import list_datasets, readable_dataset
from nephelae.catalog.query import BBox, Interval
from nephelae.catalog.search import search_granules
from nephelae.db.models import Dataset, Granule
from nephelae.errors import InvalidInput, NotFound

_BAD_TOKEN = "the paging token is damaged or belongs to another search; start again from the first page"  # noqa: S105


@dataclass(frozen=True)
class Match:
    """A granule found, with its dataset and its Item id."""

    dataset: Dataset
    granule: Granule
    item_id: str


@dataclass(frozen=True)
class Found:
    matches: list[Match]
    next_token: str | None


def searchable_datasets(session: Session, principal: Principal, collection_ids: Sequence[str]) -> list[Dataset]:
    """The collections to search: those named (each must be readable: 404 or 403 otherwise), else all readable."""
    if not collection_ids:
        return list_datasets(session, principal)
    return [readable_dataset(session, principal, collection_id) for collection_id in sorted(collection_ids)]


def search_items(session: Session, datasets: Sequence[Dataset], query: ItemQuery, namer: ItemNamer) -> Found:
    """One page of the granules of `datasets` that match `query`, and the token of the next page if any."""
    if query.ids:
        return _search_ids(session, datasets, query, namer)
    start, cursor = _resume(datasets, query.token)
    matches: list[Match] = []
    for index in range(start, len(datasets)):
        dataset, wanted = datasets[index], query.limit - len(matches)
        page = search_granules(
            session, dataset.id, bbox=query.bbox, interval=query.interval, limit=wanted, cursor=cursor
        )
        names, cursor = namer.names(session, dataset), None
        matches += [Match(dataset, granule, names.item_id(granule.path)) for granule in page.granules]
        if page.next_cursor is not None:
            return Found(matches, _encode({"collection": dataset.id, "cursor": page.next_cursor}))
        if len(matches) >= query.limit and index + 1 < len(datasets):
            return Found(matches, _encode({"collection": datasets[index + 1].id, "cursor": None}))
    return Found(matches, None)


def find_item(session: Session, dataset: Dataset, item_id: str, namer: ItemNamer) -> Match:
    """The Item `item_id` of `dataset`: 404 if there is none."""
    granules = namer.names(session, dataset).granules_named(session, [item_id])
    if not granules:
        raise NotFound(
            f"collection {dataset.id} has no item {item_id!r}; list them at /stac/collections/{dataset.id}/items"
        )
    return Match(dataset, granules[0], item_id)


def _search_ids(session: Session, datasets: Sequence[Dataset], query: ItemQuery, namer: ItemNamer) -> Found:
    """Items by id, within the other filters too (STAC API 1.0 combines them all)."""
    matches: list[Match] = []
    for dataset in datasets:
        names = namer.names(session, dataset)
        granules = names.granules_named(session, query.ids)
        matches += [
            Match(dataset, granule, names.item_id(granule.path))
            for granule in granules
            if _overlaps(granule, query.bbox, query.interval)
        ]
    offset = _decode(query.token).get("offset") if query.token else 0
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput(_BAD_TOKEN)
    end = offset + query.limit
    return Found(matches[offset:end], _encode({"offset": end}) if end < len(matches) else None)


def _overlaps(granule: Granule, bbox: BBox | None, interval: Interval | None) -> bool:
    """The catalog's search rules for one granule: closed time intervals, boxes split at the antimeridian."""
    return _in_interval(granule, interval) and _in_box(granule, bbox)


def _in_interval(granule: Granule, interval: Interval | None) -> bool:
    start, end = granule.time_start, granule.time_end
    if interval is None or start is None or end is None:
        return True
    return not ((interval.start and end < interval.start) or (interval.end and start > interval.end))


def _in_box(granule: Granule, bbox: BBox | None) -> bool:
    if bbox is None:
        return True
    if granule.west is None or granule.south is None or granule.east is None or granule.north is None:
        return False
    own = BBox(granule.west, granule.south, granule.east, granule.north).parts()
    return any(
        w1 <= e2 and w2 <= e1 and s1 <= n2 and s2 <= n1 for w1, s1, e1, n1 in own for w2, s2, e2, n2 in bbox.parts()
    )


def _resume(datasets: Sequence[Dataset], token: str | None) -> tuple[int, str | None]:
    """Where a page starts: the index of the collection to resume in, and the catalog's cursor there."""
    if token is None:
        return 0, None
    state = _decode(token)
    ids = [dataset.id for dataset in datasets]
    cursor = state.get("cursor")
    if state.get("collection") not in ids or not isinstance(cursor, str | None):
        raise InvalidInput(_BAD_TOKEN)
    return ids.index(state["collection"]), cursor


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidInput(_BAD_TOKEN) from None
    if not isinstance(state, dict):
        raise InvalidInput(_BAD_TOKEN)
    return state
