"""Tables for the property-management domain.

Enumerated columns are plain strings guarded by CHECK constraints rather than PostgreSQL ENUM types:
an ENUM is a separate database object whose creation races between processes and whose values are
awkward to extend, while a CHECK lives and dies with its table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal, get_args

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PropertyType = Literal["apartment", "house", "condo", "townhouse", "duplex"]
PropertyStatus = Literal["available", "leased"]
IssueType = Literal["plumbing", "electrical", "hvac", "appliance", "other"]
Priority = Literal["low", "medium", "high", "emergency"]
RequestStatus = Literal["open", "scheduled", "in_progress", "completed", "cancelled"]

PROPERTY_TYPES: Final[tuple[str, ...]] = get_args(PropertyType)
PROPERTY_STATUSES: Final[tuple[str, ...]] = get_args(PropertyStatus)
ISSUE_TYPES: Final[tuple[str, ...]] = get_args(IssueType)
PRIORITIES: Final[tuple[str, ...]] = get_args(Priority)
REQUEST_STATUSES: Final[tuple[str, ...]] = get_args(RequestStatus)

# Requests in these states still need someone's attention; cancelling them is allowed.
ACTIVE_REQUEST_STATUSES: Final[tuple[str, ...]] = ("open", "scheduled", "in_progress")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no timestamp type and hands back naive values even for `timezone=True` columns, so
    without this the same code would compare aware and naive datetimes depending on the backend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class Property(Base):
    __tablename__ = "properties"
    __table_args__ = (
        CheckConstraint(_one_of("property_type", PROPERTY_TYPES), name="ck_properties_type"),
        CheckConstraint(_one_of("status", PROPERTY_STATUSES), name="ck_properties_status"),
        CheckConstraint("bedrooms >= 0 AND bathrooms >= 0 AND sqft > 0", name="ck_properties_size"),
        CheckConstraint("monthly_rent >= 0", name="ck_properties_rent"),
        Index("ix_properties_city_state", "city", "state"),
        Index("ix_properties_zip", "zip"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    address: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2))
    zip: Mapped[str] = mapped_column(String(10))
    property_type: Mapped[str] = mapped_column(String(20))
    bedrooms: Mapped[int] = mapped_column(Integer)
    bathrooms: Mapped[float] = mapped_column(Float)
    sqft: Mapped[int] = mapped_column(Integer)
    monthly_rent: Mapped[int] = mapped_column(Integer)  # whole US dollars
    status: Mapped[str] = mapped_column(String(20))
    year_built: Mapped[int] = mapped_column(Integer)


class MaintenanceRequest(Base):
    __tablename__ = "maintenance_requests"
    __table_args__ = (
        CheckConstraint(_one_of("issue_type", ISSUE_TYPES), name="ck_maintenance_issue_type"),
        CheckConstraint(_one_of("priority", PRIORITIES), name="ck_maintenance_priority"),
        CheckConstraint(_one_of("status", REQUEST_STATUSES), name="ck_maintenance_status"),
        # Cancelled exactly when it carries its cancellation: a request is never both done and cancelled.
        CheckConstraint("(status = 'cancelled') = (cancelled_at IS NOT NULL)", name="ck_maintenance_cancelled"),
        Index("ix_maintenance_property_status", "property_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    property_id: Mapped[str] = mapped_column(ForeignKey("properties.id", ondelete="RESTRICT"))
    issue_type: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    preferred_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    # UNIQUE is what makes a retried approval harmless: a second insert with the same key fails
    # in the database itself, whichever process or connection attempts it. NULLs never collide.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The key of the approval that cancelled the request, so a replay of that same approval can be
    # recognised and answered with the original success instead of "already cancelled".
    cancel_idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)


LeaseStatus = Literal["pending", "active", "ended"]
LEASE_STATUSES: Final[tuple[str, ...]] = get_args(LeaseStatus)
LIVE_LEASE_STATUSES: Final[tuple[str, ...]] = ("pending", "active")  # no two of one unit overlap (tools/invariants)


class Tenant(Base):
    """A person renting (or about to rent) a property; `email` is where their welcome package goes."""

    __tablename__ = "tenants"
    __table_args__ = (Index("ix_tenants_name", "full_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    property_id: Mapped[str] = mapped_column(ForeignKey("properties.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    # The onboarding run that created the record: a re-run step finds it instead of creating a second tenant.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)


class Lease(Base):
    __tablename__ = "leases"
    __table_args__ = (
        CheckConstraint(_one_of("status", LEASE_STATUSES), name="ck_leases_status"),
        CheckConstraint("end_date > start_date", name="ck_leases_dates"),
        CheckConstraint("monthly_rent > 0 AND deposit >= 0", name="ck_leases_money"),
        Index("ix_leases_property", "property_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"))
    property_id: Mapped[str] = mapped_column(ForeignKey("properties.id", ondelete="RESTRICT"))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    monthly_rent: Mapped[int] = mapped_column(Integer)  # whole US dollars
    deposit: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    # The lease PDF in the document store, once generated.
    document_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)


class WorkflowRun(Base):
    """One run of a declared workflow (tools/workflows.py): its request, and each step's state and output.

    The id is the approval's id, which is also every step's idempotency key prefix: a re-run (after a crash, or a
    retry after a failure) reads what is done here and starts at the first step that is not."""

    __tablename__ = "workflow_runs"
    __table_args__ = (Index("ix_workflow_runs_conversation", "conversation_key", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    schema_hash: Mapped[str] = mapped_column(String(32))
    conversation_key: Mapped[str] = mapped_column(String(400))
    requested_by: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))  # whom or what the run is about, e.g. the tenant's name
    status: Mapped[str] = mapped_column(String(20))  # running | failed | done
    request: Mapped[str] = mapped_column(Text)  # JSON
    steps: Mapped[str] = mapped_column(Text)  # JSON: [{key, title, state, runs, output, error}]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


OutboxStatus = Literal["pending", "sending", "done", "failed"]
OUTBOX_STATUSES: Final[tuple[str, ...]] = get_args(OutboxStatus)


class OutboxRow(Base):
    """An effect on the world outside the database, recorded with the change that causes it (tools/outbox.py)."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_one_of("status", OUTBOX_STATUSES), name="ck_outbox_status"),
        Index("ix_outbox_due", "status", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # which deliverer takes it: "team_notice", "team_post", "email"
    payload: Mapped[str] = mapped_column(Text)  # JSON
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Not before: the next attempt of a pending row, or when a sending row's claim runs out.
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)  # what the receiver answered (a ts, an id)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
