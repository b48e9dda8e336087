"""Datasets: registration by operators, who may read which, and the summary kept after each indexing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from nephelae.accounts import Principal, audit
from nephelae.accounts.projects import add_dataset as add_project_dataset
from nephelae.accounts.projects import datasets_of, get_project
from nephelae.accounts.registry import check_identifier
from nephelae.db.models import Dataset, Granule
from nephelae.errors import Conflict, InvalidInput, NotFound, PermissionDenied


def add_dataset(
    session: Session,
    dataset_id: str,
    root: str,
    pattern: str,
    *,
    title: str | None = None,
    description: str = "",
    license: str = "proprietary",
    projects: Sequence[str] = (),
    public: bool = False,
    owner: str | None = None,
    actor: str | None = None,
) -> Dataset:
    """Register an archive (a directory or fsspec URL and a glob pattern relative to it) as a dataset."""
    check_identifier("dataset id", dataset_id)
    _check_pattern(pattern)
    for project in projects:
        get_project(session, project)  # all projects exist, or nothing is written
    if session.get(Dataset, dataset_id) is not None:
        raise Conflict(f"dataset {dataset_id!r} already exists")
    dataset = Dataset(
        id=dataset_id,
        title=title or dataset_id,
        description=description,
        license=license,
        root=root,
        pattern=pattern,
        public=public,
        owner=owner,
    )
    session.add(dataset)
    audit.record(session, "dataset.added", actor=actor, dataset=dataset_id, root=root, pattern=pattern)
    session.commit()
    for project in projects:
        add_project_dataset(session, project, dataset_id, actor=actor)
    return dataset


def _check_pattern(pattern: str) -> None:
    if not pattern or pattern.startswith("/") or ".." in pattern.split("/") or "\x00" in pattern:
        raise InvalidInput(f"pattern {pattern!r} must be a glob relative to the root, e.g. '**/*.nc'")


def get_dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id!r}; `nephelae datasets list` shows those you can read")
    return dataset


def readable_ids(session: Session, principal: Principal) -> set[str] | None:
    """Ids of the datasets `principal` may read through projects or ownership; None means every dataset (admins)."""
    if principal.is_admin:
        return None
    owned = session.scalars(select(Dataset.id).where(Dataset.owner == principal.username))
    return datasets_of(session, list(principal.projects)) | set(owned)


def can_read(session: Session, principal: Principal, dataset: Dataset) -> bool:
    readable = readable_ids(session, principal)
    return dataset.public or readable is None or dataset.id in readable


def readable_dataset(session: Session, principal: Principal, dataset_id: str) -> Dataset:
    """The dataset, if `principal` may read it: 404 if it does not exist, 403 if it is not theirs to read."""
    dataset = get_dataset(session, dataset_id)
    if not can_read(session, principal, dataset):
        raise PermissionDenied(
            f"account {principal.username} has no access to dataset {dataset_id}: it is not in any of your projects "
            f"({', '.join(principal.projects) or 'none'}); ask an operator to add it to your project"
        )
    return dataset


def list_datasets(session: Session, principal: Principal | None = None) -> list[Dataset]:
    """All datasets (operators), or those `principal` may read."""
    query = select(Dataset).order_by(Dataset.id)
    if principal is not None:
        readable = readable_ids(session, principal)
        if readable is not None:
            query = query.where(or_(Dataset.public.is_(True), Dataset.id.in_(readable)))
    return list(session.scalars(query))


def refresh_summary(session: Session, dataset: Dataset) -> Dataset:
    """Recompute counts, time extent, bounding box and variables from the granules (after an indexing)."""
    ok = Granule.status == "ok"
    of_dataset = Granule.dataset_id == dataset.id
    counts = dict(
        session.execute(select(Granule.status, func.count()).where(of_dataset).group_by(Granule.status)).all()
    )
    extent = session.execute(
        select(
            func.min(Granule.time_start), func.max(Granule.time_end), func.min(Granule.south), func.max(Granule.north)
        ).where(of_dataset, ok)
    ).one()
    dataset.granule_count = sum(counts.values())
    dataset.unreadable_count = counts.get("unreadable", 0)
    dataset.time_start, dataset.time_end, dataset.south, dataset.north = extent
    dataset.west, dataset.east = _longitude_extent(session, dataset.id)
    dataset.variables = _variables(session, dataset.id)
    dataset.indexed_at = dt.datetime.now(dt.UTC)
    session.commit()
    return dataset


def _longitude_extent(session: Session, dataset_id: str) -> tuple[float | None, float | None]:
    """The dataset's west/east: the whole globe as soon as one granule crosses the antimeridian."""
    where = (Granule.dataset_id == dataset_id, Granule.status == "ok")
    crossing = session.scalar(select(func.count()).where(*where, Granule.west > Granule.east))
    if crossing:
        return -180.0, 180.0
    return tuple(session.execute(select(func.min(Granule.west), func.max(Granule.east)).where(*where)).one())  # type: ignore[return-value]


def _variables(session: Session, dataset_id: str) -> list[dict[str, object]]:
    """The variables of the most recent readable granule (granules of a dataset share their variables)."""
    newest = session.scalar(
        select(Granule.variables)
        .where(Granule.dataset_id == dataset_id, Granule.status == "ok")
        .order_by(Granule.time_start.desc())
        .limit(1)
    )
    return list(newest or [])
