"""`/api/v1/admin/...`: the operators' side of accounts and access. Admins only; every action is audited with its actor.

Accounts and their decisions, allowed networks, API tokens, SSH keys, projects, and the audit log. The same services
back the `nephelae admin` commands, so both doors behave alike.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.orm import Session

from nephelae.accounts import audit, keys, networks, projects, registry, tokens
from nephelae.api.auth import Administrator
from nephelae.api.deps import SessionDep, SettingsDep
from nephelae.api.schemas import (
    AccountDetail,
    AccountStatus,
    AllowedNetworks,
    ApproveRequest,
    AuditEntry,
    DatasetRequest,
    KeyInfo,
    KeyRequest,
    MemberRequest,
    NetworkRequest,
    NewToken,
    ProjectInfo,
    ProjectRequest,
    RoleRequest,
    TokenInfo,
    TokenRequest,
)
from nephelae.db.models import Account

router = APIRouter(prefix="/admin", tags=["admin"])

# Path parameters are checked against the domain's own patterns: a malformed name is a 422, never a database query.
USERNAME_PATTERN = f"^{registry.USERNAME.pattern}$"
Username = Annotated[str, Path(pattern=USERNAME_PATTERN, description="The account's username.")]
ProjectName = Annotated[str, Path(pattern=f"^{registry.IDENTIFIER.pattern}$", description="The project's name.")]
TokenName = Annotated[str, Path(pattern=f"^{tokens.TOKEN_NAME.pattern}$", description="The token's name.")]
Fingerprint = Annotated[
    str, Path(pattern=r"^SHA256:[A-Za-z0-9+/]{43}$", description="OpenSSH fingerprint, e.g. SHA256:abc...")
]
Cidr = Annotated[str, Path(max_length=64, description="An allowed range, e.g. 192.0.2.0/24 (slashes as they are).")]


def _detail(session: Session, account: Account) -> AccountDetail:
    return AccountDetail.of_account(account, projects.projects_of(session, account))


# Accounts and the operators' decisions.


@router.get("/accounts", summary="List accounts")
def list_accounts(
    _admin: Administrator, session: SessionDep, status: AccountStatus | None = None
) -> list[AccountDetail]:
    """Every account, oldest first; `?status=pending` lists those waiting for a decision."""
    return [_detail(session, account) for account in registry.list_accounts(session, status)]


@router.get("/accounts/{username}", summary="Show an account")
def show_account(username: Username, _admin: Administrator, session: SessionDep) -> AccountDetail:
    return _detail(session, registry.get_account(session, username))


@router.post("/accounts/{username}/approve", summary="Approve an account")
def approve_account(
    username: Username, admin: Administrator, session: SessionDep, body: ApproveRequest | None = None
) -> AccountDetail:
    """Approve a pending (or rejected) account, allowing the given ranges at once. 409 if already approved."""
    account = networks.approve(session, username, body.allow if body else [], actor=admin.username)
    return _detail(session, account)


@router.post("/accounts/{username}/reject", summary="Reject an account")
def reject_account(username: Username, admin: Administrator, session: SessionDep) -> AccountDetail:
    """Reject a pending registration. 409 if the account is not pending."""
    return _detail(session, registry.decide(session, username, "reject", actor=admin.username))


@router.post("/accounts/{username}/suspend", summary="Suspend an account")
def suspend_account(username: Username, admin: Administrator, session: SessionDep) -> AccountDetail:
    """Refuse every request of an approved account until it is reinstated; its tokens and keys are kept."""
    return _detail(session, registry.decide(session, username, "suspend", actor=admin.username))


@router.post("/accounts/{username}/reinstate", summary="Reinstate an account")
def reinstate_account(username: Username, admin: Administrator, session: SessionDep) -> AccountDetail:
    """Lift a suspension. 409 if the account is not suspended."""
    return _detail(session, registry.decide(session, username, "reinstate", actor=admin.username))


@router.put("/accounts/{username}/role", summary="Set an account's role")
def set_role(username: Username, body: RoleRequest, admin: Administrator, session: SessionDep) -> AccountDetail:
    """Make the account an `admin` (operator) or a plain `user`."""
    return _detail(session, registry.set_role(session, username, body.role, actor=admin.username))


# Allowed networks.


@router.get("/accounts/{username}/networks", summary="List allowed networks")
def list_networks(username: Username, _admin: Administrator, session: SessionDep) -> AllowedNetworks:
    return AllowedNetworks.of(registry.get_account(session, username))


@router.post("/accounts/{username}/networks", status_code=201, summary="Allow a network")
def allow_network(
    username: Username, body: NetworkRequest, admin: Administrator, session: SessionDep
) -> AllowedNetworks:
    """Let the account connect from a CIDR range (IPv4 or IPv6). 409 if it already may."""
    networks.allow_network(session, username, body.cidr, actor=admin.username)
    return AllowedNetworks.of(registry.get_account(session, username))


@router.delete("/accounts/{username}/networks/{cidr:path}", status_code=204, summary="Remove a network")
def remove_network(username: Username, cidr: Cidr, admin: Administrator, session: SessionDep) -> None:
    """Stop the account connecting from a range, e.g. `DELETE .../networks/192.0.2.0/24`."""
    networks.remove_network(session, username, cidr, actor=admin.username)


# API tokens.


@router.get("/accounts/{username}/tokens", summary="List tokens")
def list_tokens(username: Username, _admin: Administrator, session: SessionDep) -> list[TokenInfo]:
    """The account's tokens, revoked and expired ones included; never the tokens themselves."""
    return [TokenInfo.of(token) for token in tokens.list_tokens(session, username)]


@router.post("/accounts/{username}/tokens", status_code=201, summary="Create a token")
def create_token(
    username: Username,
    admin: Administrator,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    body: TokenRequest | None = None,
) -> NewToken:
    """A new bearer token for the account, returned this once only. 409 if the name is taken."""
    body = body or TokenRequest()
    expires_days = body.expires_days or settings.token_expiry_days
    token, record = tokens.create_token(
        session, username, name=body.name, expires_days=expires_days, actor=admin.username
    )
    response.headers["Cache-Control"] = "no-store"
    return NewToken.of_new(username, token, record)


@router.delete("/accounts/{username}/tokens/{name}", summary="Revoke a token")
def revoke_token(username: Username, name: TokenName, admin: Administrator, session: SessionDep) -> TokenInfo:
    """Revoke a token at once; its record stays listed (with `revoked_at`) for the audit trail."""
    return TokenInfo.of(tokens.revoke_token(session, username, name, actor=admin.username))


# SSH keys.


@router.get("/accounts/{username}/keys", summary="List SSH keys")
def list_keys(username: Username, _admin: Administrator, session: SessionDep) -> list[KeyInfo]:
    return [KeyInfo.of(key) for key in keys.list_keys(session, username)]


@router.post("/accounts/{username}/keys", status_code=201, summary="Add an SSH key")
def add_key(username: Username, body: KeyRequest, admin: Administrator, session: SessionDep) -> KeyInfo:
    """Register an OpenSSH public key line for the account. 400 if it is not a usable key, 409 if known."""
    return KeyInfo.of(keys.add_key(session, username, body.public_key, actor=admin.username))


@router.delete(
    "/accounts/{username}/keys/{fingerprint:path}",
    status_code=204,
    summary="Remove an SSH key",
)
def remove_key(username: Username, fingerprint: Fingerprint, admin: Administrator, session: SessionDep) -> None:
    keys.remove_key(session, username, fingerprint, actor=admin.username)


# Projects.


@router.get("/projects", summary="List projects")
def list_projects(_admin: Administrator, session: SessionDep) -> list[ProjectInfo]:
    return [ProjectInfo.of(project) for project in projects.list_projects(session)]


@router.post("/projects", status_code=201, summary="Create a project")
def create_project(body: ProjectRequest, admin: Administrator, session: SessionDep) -> ProjectInfo:
    return ProjectInfo.of(projects.create_project(session, body.name, actor=admin.username))


@router.get("/projects/{name}", summary="Show a project")
def show_project(name: ProjectName, _admin: Administrator, session: SessionDep) -> ProjectInfo:
    return ProjectInfo.of(projects.get_project(session, name))


@router.post("/projects/{name}/members", status_code=201, summary="Add a member")
def add_member(name: ProjectName, body: MemberRequest, admin: Administrator, session: SessionDep) -> ProjectInfo:
    return ProjectInfo.of(projects.add_member(session, name, body.username, actor=admin.username))


@router.delete("/projects/{name}/members/{username}", status_code=204, summary="Remove a member")
def remove_member(name: ProjectName, username: Username, admin: Administrator, session: SessionDep) -> None:
    projects.remove_member(session, name, username, actor=admin.username)


@router.post("/projects/{name}/datasets", status_code=201, summary="Add a dataset")
def add_dataset(name: ProjectName, body: DatasetRequest, admin: Administrator, session: SessionDep) -> ProjectInfo:
    """Let the project's members read a dataset (by id)."""
    return ProjectInfo.of(projects.add_dataset(session, name, body.dataset, actor=admin.username))


# The audit log.


@router.get("/audit", summary="Read the audit log")
def read_audit(
    _admin: Administrator,
    session: SessionDep,
    actor: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_.:@-]{1,64}$", description="Only events done by this account (or `operator:LOGIN`)."
        ),
    ] = None,
    involving: Annotated[
        str | None, Query(pattern=USERNAME_PATTERN, description="Only events done by or to this account.")
    ] = None,
    kind: Annotated[str | None, Query(pattern=r"^[a-z_.]{1,64}$", description="e.g. `access.refused`.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    """Newest first: registrations, decisions, refusals (with the address), tokens used from new addresses..."""
    events = audit.list_events(session, actor=actor, involving=involving, kind=kind, limit=limit)
    return [AuditEntry.of(event) for event in events]
