"""The demo's people: an operator and a scientist, approved from this machine, in a demo project."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from nephelae.accounts import Registration, networks, projects, registry, tokens
from nephelae.errors import NotFound

DEMO_PROJECT = "oceanheatflux"
LOOPBACK = ("127.0.0.1/32", "::1/128")
ACTOR = "demo-setup"

PEOPLE = {
    "admin": Registration(
        username="admin",
        email="admin@nephelae.invalid",
        full_name="Demo Operator",
        affiliation="Nephelae demo data centre",
        project=DEMO_PROJECT,
        justification="Operates the demo platform.",
    ),
    "user": Registration(
        username="demo",
        email="demo@nephelae.invalid",
        full_name="Demo Scientist",
        affiliation="Nephelae demo partner",
        project=DEMO_PROJECT,
        justification="Tries the platform: air-sea heat fluxes from the demo SST and meteorology.",
    ),
}


def set_up_people(session: Session, dataset_ids: Iterable[str], known: dict[str, Any]) -> dict[str, Any]:
    """Create (or keep) the demo accounts, project and tokens; `known` is the previous credentials file, if any."""
    project = _ensure_project(session, dataset_ids)
    credentials: dict[str, Any] = {}
    for key, person in PEOPLE.items():
        _ensure_account(session, person, role="admin" if key == "admin" else "user")
        if person.username not in {member.username for member in project.members}:
            projects.add_member(session, DEMO_PROJECT, person.username, actor=ACTOR)
        previous = (known.get(key) or {}).get("token")
        credentials[key] = {"username": person.username, "token": _ensure_token(session, person.username, previous)}
    return credentials


def _ensure_project(session: Session, dataset_ids: Iterable[str]) -> Any:
    try:
        project = projects.get_project(session, DEMO_PROJECT)
    except NotFound:
        project = projects.create_project(session, DEMO_PROJECT, actor=ACTOR)
    readable = {link.dataset_id for link in project.datasets}
    for dataset_id in dataset_ids:
        if dataset_id not in readable:
            projects.add_dataset(session, DEMO_PROJECT, dataset_id, actor=ACTOR)
    return project


def _ensure_account(session: Session, person: Registration, role: str) -> None:
    try:
        account = registry.get_account(session, person.username)
    except NotFound:
        account = registry.register(session, person)
    if account.status != "approved":
        registry.decide(
            session, person.username, "reinstate" if account.status == "suspended" else "approve", actor=ACTOR
        )
    if account.role != role:
        registry.set_role(session, person.username, role, actor=ACTOR)
    allowed = {network.cidr for network in account.networks}
    for cidr in LOOPBACK:
        if cidr not in allowed:
            networks.allow_network(session, person.username, cidr, actor=ACTOR)


def _ensure_token(session: Session, username: str, previous: str | None) -> str:
    """Keep the token of the previous run while it is valid; otherwise issue a new one."""
    if previous:
        record = tokens.find_token(session, previous)
        if record is not None and record.account.username == username and record.revoked_at is None:
            return previous
    existing = tokens.list_tokens(session, username)
    token, _ = tokens.create_token(session, username, name=f"demo-{len(existing) + 1}", expires_days=365, actor=ACTOR)
    return token
