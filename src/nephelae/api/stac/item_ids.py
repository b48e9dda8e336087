"""Item ids: stable, URL-safe names for granules, unique within their collection.

A granule's Item id is its file name without the last extension (`20200101-IFR-L4-SST.nc` ->
`20200101-IFR-L4-SST`), characters other than letters, digits, '.', '-' and '_' replaced by '_'. When several
granules of a dataset share that name (the same file name in several directories), each of them is named by its
whole path instead, '/' and other unsafe characters replaced by '_' (`2020/001/sst.nc` -> `2020_001_sst.nc`).

Whether a name is shared is known from one scan of the dataset's paths, kept per (dataset, last indexing): an id
changes only when an indexing adds or removes a granule with the same file name. Ids are only ever made of safe
characters, so an id can be looked up with LIKE, its '_' matching the one character it replaced.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from threading import Lock

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from nephelae.db.models import Dataset, Granule

ITEM_ID = re.compile(r"[A-Za-z0-9._-]{1,1024}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SCAN_BATCH = 10_000


def file_stem(path: str) -> str:
    """The file name of `path` without its last extension, made URL-safe."""
    name = path.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    return _UNSAFE.sub("_", stem)


def path_id(path: str) -> str:
    """The whole relative path, made URL-safe ('/' becomes '_')."""
    return _UNSAFE.sub("_", path)


@dataclass(frozen=True)
class ItemNames:
    """How the granules of one dataset are named as Items."""

    dataset_id: str
    shared_stems: frozenset[str]

    def item_id(self, path: str) -> str:
        stem = file_stem(path)
        return path_id(path) if stem in self.shared_stems else stem

    def granules_named(self, session: Session, ids: Sequence[str]) -> list[Granule]:
        """The readable granules of the dataset whose Item id is one of `ids`, in (time, id) order."""
        wanted = {item_id for item_id in ids if ITEM_ID.fullmatch(item_id)}
        if not wanted:
            return []
        candidates = session.scalars(
            select(Granule)
            .where(Granule.dataset_id == self.dataset_id, Granule.status == "ok")
            .where(or_(*(Granule.path.like(f"%{item_id}%") for item_id in wanted)))
            .order_by(Granule.time_start, Granule.id)
        )
        return [granule for granule in candidates if self.item_id(granule.path) in wanted]


class ItemNamer:
    """The `ItemNames` of each dataset, computed once per indexing and kept for the life of the app."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._names: dict[tuple[str, dt.datetime | None, int], ItemNames] = {}
        self._lock = Lock()

    def names(self, session: Session, dataset: Dataset) -> ItemNames:
        key = (dataset.id, dataset.indexed_at, dataset.granule_count)
        with self._lock:
            known = self._names.get(key)
        if known is not None:
            return known
        names = ItemNames(dataset.id, shared_stems(session, dataset.id))
        with self._lock:
            if len(self._names) >= self._size:
                self._names.pop(next(iter(self._names)))  # the oldest entry
            self._names[key] = names
        return names


def shared_stems(session: Session, dataset_id: str) -> frozenset[str]:
    """The file stems that more than one granule of the dataset has, readable or not (so ids survive re-indexing)."""
    paths = session.scalars(
        select(Granule.path).where(Granule.dataset_id == dataset_id).execution_options(yield_per=_SCAN_BATCH)
    )
    counts = Counter(file_stem(path) for path in paths)
    return frozenset(stem for stem, count in counts.items() if count > 1)
