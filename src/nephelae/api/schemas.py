"""The wire shapes of accounts and access: what `/api/v1` accepts and returns.

Only the HTTP layer knows these; services take and return domain objects and the routes convert them here. Nothing
secret leaves through them except a new token, once, in `NewToken`. Datetimes are ISO 8601 in UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from nephelae.accounts import Principal, Registration
from nephelae.accounts.registry import USERNAME
from nephelae.db.models import Account, ApiToken, AuditEvent, Project, SshKey

AccountStatus = Literal["pending", "approved", "rejected", "suspended"]


class RequestBody(BaseModel):
    """A request body: unknown fields are refused rather than silently dropped."""

    model_config = ConfigDict(extra="forbid")


class RegistrationRequest(RequestBody):
    """What a partner fills in to ask for an account; the operators read it to decide."""

    username: str = Field(max_length=64, description="2-32 lower-case letters, digits, '-' or '_'; a login name.")
    email: str = Field(max_length=320, description="Where the operators can reach you.")
    full_name: str = Field(max_length=400)
    affiliation: str = Field(max_length=400, description="Institute or company.")
    project: str = Field(max_length=128, description="Project you ask to join, e.g. `oceanheatflux`.")
    justification: str = Field(max_length=10_000, description="What you will do; used to set priorities.")

    def to_registration(self) -> Registration:
        return Registration(**self.model_dump())


class RegisteredAccount(BaseModel):
    """An account as its registrant sees it right after asking."""

    username: str
    email: str
    full_name: str
    affiliation: str
    project: str = Field(description="The project asked for.")
    status: AccountStatus
    created_at: dt.datetime

    @classmethod
    def of(cls, account: Account) -> RegisteredAccount:
        return cls(
            username=account.username,
            email=account.email,
            full_name=account.full_name,
            affiliation=account.affiliation,
            project=account.requested_project,
            status=cast(AccountStatus, account.status),
            created_at=account.created_at,
        )


class Me(BaseModel):
    """The caller, as the platform sees them: identity, rights, and the address the request came from."""

    username: str
    email: str
    full_name: str
    affiliation: str
    role: str
    status: AccountStatus
    projects: list[str]
    allowed_networks: list[str]
    address: str = Field(description="The caller's address as seen by the platform (after trusted proxies).")

    @classmethod
    def of(cls, account: Account, principal: Principal) -> Me:
        return cls(
            username=account.username,
            email=account.email,
            full_name=account.full_name,
            affiliation=account.affiliation,
            role=account.role,
            status=cast(AccountStatus, account.status),
            projects=list(principal.projects),
            allowed_networks=[network.cidr for network in account.networks],
            address=principal.address,
        )


class AccountDetail(RegisteredAccount):
    """An account as the operators see it: the request, the decision, and what it gives access to."""

    role: str
    justification: str
    decided_at: dt.datetime | None
    decided_by: str | None
    allowed_networks: list[str]
    projects: list[str]

    @classmethod
    def of_account(cls, account: Account, projects: list[str]) -> AccountDetail:
        return cls(
            **RegisteredAccount.of(account).model_dump(),
            role=account.role,
            justification=account.justification,
            decided_at=account.decided_at,
            decided_by=account.decided_by,
            allowed_networks=[network.cidr for network in account.networks],
            projects=projects,
        )


class ApproveRequest(RequestBody):
    allow: list[str] = Field(
        default_factory=list, max_length=100, description="CIDR ranges to allow at once, e.g. `192.0.2.0/24`."
    )


class RoleRequest(RequestBody):
    role: Literal["user", "admin"]


class NetworkRequest(RequestBody):
    cidr: str = Field(max_length=64, description="An IPv4 or IPv6 address or CIDR range.")


class AllowedNetworks(BaseModel):
    username: str
    allowed_networks: list[str]

    @classmethod
    def of(cls, account: Account) -> AllowedNetworks:
        return cls(username=account.username, allowed_networks=[network.cidr for network in account.networks])


class TokenRequest(RequestBody):
    name: str = Field("default", max_length=64, description="Unique per account; used to list and revoke it.")
    expires_days: int | None = Field(
        None, ge=1, le=3650, description="Lifetime in days; the platform's `token_expiry_days` when omitted."
    )


class TokenInfo(BaseModel):
    """A token's record: never the token itself nor its hash."""

    name: str
    prefix: str = Field(description="The token's first characters, to recognise it.")
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    last_used_address: str | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenInfo:
        return cls(
            name=token.name,
            prefix=token.display_prefix,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            last_used_at=token.last_used_at,
            last_used_address=token.last_used_address,
        )


class NewToken(TokenInfo):
    """A token just created: the only time the platform shows it."""

    username: str
    token: str = Field(description="The bearer token. Shown once: store it now, it cannot be shown again.")

    @classmethod
    def of_new(cls, username: str, token: str, record: ApiToken) -> NewToken:
        return cls(**TokenInfo.of(record).model_dump(), username=username, token=token)


class KeyRequest(RequestBody):
    public_key: str = Field(max_length=16_384, description="One line of an OpenSSH `.pub` file: TYPE BASE64 [COMMENT].")


class KeyInfo(BaseModel):
    fingerprint: str = Field(description="OpenSSH SHA256 fingerprint, as `ssh-keygen -lf` shows it.")
    key_type: str
    comment: str
    created_at: dt.datetime

    @classmethod
    def of(cls, key: SshKey) -> KeyInfo:
        return cls(fingerprint=key.fingerprint, key_type=key.key_type, comment=key.comment, created_at=key.created_at)


class ProjectRequest(RequestBody):
    name: str = Field(max_length=64, description="A plain lower-case identifier, e.g. `oceanheatflux`.")


class MemberRequest(RequestBody):
    username: str = Field(pattern=f"^{USERNAME.pattern}$", description="An existing account's username.")


class DatasetRequest(RequestBody):
    dataset: str = Field(max_length=128, description="Id of a dataset the project's members may read.")


class ProjectInfo(BaseModel):
    name: str
    created_at: dt.datetime
    members: list[str]
    datasets: list[str]

    @classmethod
    def of(cls, project: Project) -> ProjectInfo:
        return cls(
            name=project.name,
            created_at=project.created_at,
            members=[member.username for member in project.members],
            datasets=[link.dataset_id for link in project.datasets],
        )


class AuditEntry(BaseModel):
    """One audit event: what happened, who did it (or was refused), to which account, from where, when."""

    id: int
    at: dt.datetime
    kind: str
    actor: str | None = Field(description="Who did it: an account, or `operator:<login>` for commands on the home.")
    subject: str | None = Field(description="The account it was done to, if any.")
    address: str | None = Field(description="Where the actor connected from, when known.")
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEntry:
        return cls(
            id=event.id,
            at=event.at,
            kind=event.kind,
            actor=event.actor,
            subject=event.subject,
            address=event.address,
            detail=event.detail,
        )
