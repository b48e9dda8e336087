"""The SQL schema, as SQLAlchemy models. Migrations under `migrations/` create it; a test checks they agree."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON()}


class AuditEvent(Base):
    """A security- or operations-relevant event: who did what, from where, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str | None] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Account(Base):
    """A person who asked to use the platform, and what the operators decided."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    affiliation: Mapped[str] = mapped_column(String(200))
    requested_project: Mapped[str] = mapped_column(String(64))
    justification: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(64))

    networks: Mapped[list[AllowedNetwork]] = relationship(
        back_populates="account", cascade="all, delete-orphan", order_by="AllowedNetwork.id"
    )


class AllowedNetwork(Base):
    """A CIDR range an account may connect from."""

    __tablename__ = "allowed_networks"
    __table_args__ = (UniqueConstraint("account_id", "cidr", name="uq_allowed_networks_account_cidr"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    cidr: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="networks")


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored: tokens are 256-bit random, so a fast hash is enough."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_api_tokens_account_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    last_used_address: Mapped[str | None] = mapped_column(String(64))
    # Minted for an SSH session: usable only from the entry point, whose sshd checked the client's address.
    ssh_session: Mapped[bool] = mapped_column(default=False, server_default=false())

    account: Mapped[Account] = relationship()


class SshKey(Base):
    """An SSH public key that identifies an account to the SSH entry point."""

    __tablename__ = "ssh_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    key_type: Mapped[str] = mapped_column(String(64))
    key_data: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    comment: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship()


project_members = Table(
    "project_members",
    Base.metadata,
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
)


class Project(Base):
    """Accounts sharing access to datasets and a workspace."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    members: Mapped[list[Account]] = relationship(secondary=project_members, order_by="Account.username")
    datasets: Mapped[list[ProjectDataset]] = relationship(
        cascade="all, delete-orphan", order_by="ProjectDataset.dataset_id"
    )


class ProjectDataset(Base):
    """A dataset a project may read (by id: the catalog owns datasets)."""

    __tablename__ = "project_datasets"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)


class Dataset(Base):
    """A collection of granules under one root, with a summary kept up to date by the indexer."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    license: Mapped[str] = mapped_column(String(200), default="proprietary")
    root: Mapped[str] = mapped_column(Text)
    pattern: Mapped[str] = mapped_column(String(300))
    public: Mapped[bool] = mapped_column(default=False)
    owner: Mapped[str | None] = mapped_column(String(64))
    provenance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    indexed_at: Mapped[dt.datetime | None]
    granule_count: Mapped[int] = mapped_column(default=0)
    unreadable_count: Mapped[int] = mapped_column(default=0)
    time_start: Mapped[dt.datetime | None]
    time_end: Mapped[dt.datetime | None]
    west: Mapped[float | None]
    south: Mapped[float | None]
    east: Mapped[float | None]
    north: Mapped[float | None]
    variables: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Granule(Base):
    """One file (or Zarr store) of a dataset, as the indexer last read it.

    The bounding box follows STAC: west > east means the footprint crosses the antimeridian.
    """

    __tablename__ = "granules"
    __table_args__ = (
        UniqueConstraint("dataset_id", "path", name="uq_granules_dataset_path"),
        Index("ix_granules_dataset_time", "dataset_id", "time_start", "id"),
        Index("ix_granules_dataset_indexed", "dataset_id", "indexed_at", "id"),  # standing campaigns' new granules
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # relative to the dataset root, '/'-separated
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | unreadable
    reason: Mapped[str | None] = mapped_column(Text)
    time_start: Mapped[dt.datetime | None]
    time_end: Mapped[dt.datetime | None]
    west: Mapped[float | None]
    south: Mapped[float | None]
    east: Mapped[float | None]
    north: Mapped[float | None]
    footprint: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # GeoJSON geometry, when finer than the bbox
    variables: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # selected global attributes
    indexed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    """A processor applied over a selection of datasets; its state machine's persistent half."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_owner_created", "owner", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    processor_identity: Mapped[str] = mapped_column(Text)
    output_dataset: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(32), default="queued", index=True)
    planning_finished: Mapped[bool] = mapped_column(default=False)
    follow: Mapped[bool] = mapped_column(default=False)
    retries: Mapped[int] = mapped_column(default=2)
    task_count: Mapped[int] = mapped_column(default=0)
    plan_cursor: Mapped[str | None] = mapped_column(Text)
    followed_until: Mapped[dt.datetime | None]
    pending_count: Mapped[int] = mapped_column(default=0)
    running_count: Mapped[int] = mapped_column(default=0)
    done_count: Mapped[int] = mapped_column(default=0)
    failed_count: Mapped[int] = mapped_column(default=0)
    cancelled_count: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # A user's cancel or retry, left here for the engine, which feeds it to the state machine on its next turn.
    request: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class CampaignTask(Base):
    """One unit of a campaign: its inputs, status, attempts, timings, log and outputs."""

    __tablename__ = "campaign_tasks"
    __table_args__ = (
        UniqueConstraint("campaign_id", "ordinal", name="uq_campaign_tasks_campaign_ordinal"),
        Index("ix_campaign_tasks_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    ordinal: Mapped[int]
    key: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(256))
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    log_path: Mapped[str | None] = mapped_column(Text)
    outputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
