"""Projects: accounts sharing datasets and a workspace."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from nephelae.accounts import audit
from nephelae.accounts.registry import check_identifier, get_account
from nephelae.db.models import Account, Project, ProjectDataset, project_members
from nephelae.errors import Conflict, NotFound


def create_project(session: Session, name: str, *, actor: str | None = None) -> Project:
    check_identifier("project name", name)
    if session.scalar(select(Project).where(Project.name == name)) is not None:
        raise Conflict(f"project {name!r} already exists")
    project = Project(name=name)
    session.add(project)
    audit.record(session, "project.created", actor=actor, project=name)
    session.commit()
    return project


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"no project named {name!r}; `nephelae admin projects create {name}` creates it")
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.name)))


def add_member(session: Session, name: str, username: str, *, actor: str | None = None) -> Project:
    project = get_project(session, name)
    account = get_account(session, username)
    if account in project.members:
        raise Conflict(f"{username} is already a member of {name}")
    project.members.append(account)
    audit.record(session, "project.member_added", actor=actor, project=name, subject=username)
    session.commit()
    return project


def remove_member(session: Session, name: str, username: str, *, actor: str | None = None) -> Project:
    project = get_project(session, name)
    account = get_account(session, username)
    if account not in project.members:
        raise NotFound(f"{username} is not a member of {name}")
    project.members.remove(account)
    audit.record(session, "project.member_removed", actor=actor, project=name, subject=username)
    session.commit()
    return project


def add_dataset(session: Session, name: str, dataset_id: str, *, actor: str | None = None) -> Project:
    project = get_project(session, name)
    check_identifier("dataset id", dataset_id)
    if any(link.dataset_id == dataset_id for link in project.datasets):
        raise Conflict(f"{dataset_id} is already readable by project {name}")
    project.datasets.append(ProjectDataset(dataset_id=dataset_id))
    audit.record(session, "project.dataset_added", actor=actor, project=name, dataset=dataset_id)
    session.commit()
    return project


def projects_of(session: Session, account: Account) -> list[str]:
    """Names of the projects `account` belongs to."""
    query = (
        select(Project.name)
        .join(project_members, project_members.c.project_id == Project.id)
        .where(project_members.c.account_id == account.id)
        .order_by(Project.name)
    )
    return list(session.scalars(query))


def datasets_of(session: Session, projects: list[str]) -> set[str]:
    """Ids of the datasets readable through `projects`."""
    if not projects:
        return set()
    query = select(ProjectDataset.dataset_id).join(Project).where(Project.name.in_(projects))
    return set(session.scalars(query))
