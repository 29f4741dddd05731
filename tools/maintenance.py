"""Maintenance request tools: list (read-only), schedule and cancel (both need a human approval).

Writes are idempotent on `ctx.idempotency_key` because an approval can be delivered twice (a
re-clicked button, a retried turn, two processes racing). The database enforces it: the key is a
UNIQUE column, so the loser of a race gets an IntegrityError and answers with the winner's request.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from tools import outbox
from tools.outbox import TEAM_NOTICE
from tools.presentation import Detail, Presentation, PresentationItem, Source, TeamNotice
from tools.properties import normalize_property_id
from tools.registry import Registry, ToolContext, ToolResult
from tools.tables import (
    ACTIVE_REQUEST_STATUSES,
    IssueType,
    MaintenanceRequest,
    Priority,
    Property,
    RequestStatus,
)
from tools.text import shorten

registry = Registry()

LIST_LIMIT: Final = 25
DESCRIPTION_MIN: Final = 3
DESCRIPTION_MAX: Final = 2000


def _description_length(value: str) -> str:
    # Checked here rather than with Field(min_length=...): OpenAI's strict tool schemas reject
    # minLength/maxLength, and the registry passes field constraints straight into the schema.
    value = value.strip()
    if not DESCRIPTION_MIN <= len(value) <= DESCRIPTION_MAX:
        raise ValueError(f"must be {DESCRIPTION_MIN} to {DESCRIPTION_MAX} characters")
    return value


RequestDescription = Annotated[str, AfterValidator(_description_length)]


def normalize_request_id(raw: str) -> str:
    """' mr-5001 ' -> 'MR-5001'; a bare number gets the 'MR-' prefix."""
    cleaned = raw.strip().upper()
    return f"MR-{cleaned}" if cleaned.isdigit() else cleaned


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _label(value: str) -> str:
    return value.replace("_", " ").capitalize()


def _place(prop: Property | None, property_id: str) -> str:
    return f"{prop.address}, {prop.city}" if prop is not None else f"unknown property {property_id}"


def _request_data(req: MaintenanceRequest, prop: Property | None) -> dict[str, Any]:
    return {
        "request_id": req.id,
        "status": req.status,
        "property_id": req.property_id,
        "address": _place(prop, req.property_id),
        "issue_type": req.issue_type,
        "priority": req.priority,
        "description": req.description,
        "preferred_date": req.preferred_date.isoformat() if req.preferred_date else None,
        "created_at": req.created_at.isoformat(),
    }


def _request_fields(req: MaintenanceRequest, prop: Property | None) -> list[Detail]:
    fields = [
        Detail(label="Property", value=_place(prop, req.property_id)),
        Detail(label="Issue type", value=_label(req.issue_type)),
        Detail(label="Priority", value=_label(req.priority)),
        Detail(label="Status", value=_label(req.status)),
        Detail(
            label="Preferred date",
            value=req.preferred_date.isoformat() if req.preferred_date else "No preference",
        ),
    ]
    if req.cancelled_by is not None:
        fields.append(Detail(label="Cancelled by", value=req.cancelled_by))
    return fields


async def _with_property(session: AsyncSession, req: MaintenanceRequest, summary: str | None = None) -> ToolResult:
    """The standard answer for one request, used for fresh writes and idempotent replays alike; `summary`
    says in words what this call did (created, cancelled, or found it already done)."""
    prop = await session.get(Property, req.property_id)
    presentation = Presentation(
        title=f"Maintenance request {req.id}: {_label(req.status).lower()}",
        fields=[*_request_fields(req, prop), Detail(label="Description", value=req.description)],
    )
    data = _request_data(req, prop)
    if req.cancelled_at is not None:
        data["cancelled_at"] = req.cancelled_at.isoformat()
        data["cancelled_by"] = req.cancelled_by
    return ToolResult(data=data, summary=summary, presentation=presentation, sources=[_source(req, prop)])


async def _tell_the_team(session: AsyncSession, req: MaintenanceRequest, prop: Property | None) -> None:
    """Record the notice of this change in the outbox, in the caller's transaction: the team hears of every change
    that commits, once per change (its id is the request and its new status)."""
    title = f"Maintenance request {req.id}: {_label(req.status).lower()}"
    notice = TeamNotice(
        key=f"{req.id}:{req.status}",
        request_id=req.id,
        property_id=req.property_id,
        city=prop.city if prop is not None else "",
        status=req.status,
        title=title,
        fields=[*_request_fields(req, prop), Detail(label="Description", value=req.description)],
        marks=marks_from(req.status),
    )
    await outbox.record(session, f"notice:{notice.key}", TEAM_NOTICE, notice.model_dump(mode="json"))


# What each status the maintenance team sets may follow: done work is not reopened, a cancelled request stays
# cancelled. Each is a button on the team's notice, with its label.
TEAM_TRANSITIONS: Final = {"in_progress": ("open", "scheduled"), "completed": ("open", "scheduled", "in_progress")}
TEAM_MARKS: Final = {"in_progress": "Mark in progress", "completed": "Mark done"}


def marks_from(status: str) -> dict[str, str]:
    """The statuses the team may set on a request in `status`, with their button labels, in order."""
    return {new: TEAM_MARKS[new] for new, after in TEAM_TRANSITIONS.items() if status in after}


_ALREADY_CREATED = "Request {id} was already created for this approval; nothing new was created."


# -- list ------------------------------------------------------------------------------------------


class ListMaintenanceRequestsArgs(BaseModel):
    property_id: str | None = Field(default=None, description="Only requests for this property, e.g. 'P-1001'.")
    status: RequestStatus | None = Field(default=None, description="Only requests in this status.")


def _list_cache_key(args: ListMaintenanceRequestsArgs) -> dict[str, Any]:
    pid = normalize_property_id(args.property_id) if args.property_id is not None else None
    return {"property_id": pid, "status": args.status}


def _listing(args: ListMaintenanceRequestsArgs) -> str:
    where = f" for {normalize_property_id(args.property_id)}" if args.property_id else ""
    return f"Listing maintenance requests{where}…"


@registry.tool(cache_ttl=30, cache_key=_list_cache_key, progress=_listing)
async def list_maintenance_requests(args: ListMaintenanceRequestsArgs, ctx: ToolContext) -> ToolResult:
    """List maintenance requests, newest first (at most 25), optionally for one property and/or one status."""
    pid = normalize_property_id(args.property_id) if args.property_id is not None else None
    async with ctx.db.session() as session:
        prop: Property | None = None
        if pid is not None:
            prop = await session.get(Property, pid)
            if prop is None:
                return ToolResult.failure(f"No property with id '{pid}'. Use search_properties to find ids.")
        query = select(MaintenanceRequest, Property).join(Property)
        if pid is not None:
            query = query.where(MaintenanceRequest.property_id == pid)
        if args.status is not None:
            query = query.where(MaintenanceRequest.status == args.status)
        query = query.order_by(MaintenanceRequest.created_at.desc(), MaintenanceRequest.id.desc())
        rows = [(req, p) for req, p in await session.execute(query.limit(LIST_LIMIT + 1))]

    truncated = len(rows) > LIST_LIMIT
    rows = rows[:LIST_LIMIT]
    requests = []
    for req, p in rows:
        item = _request_data(req, p)
        # A list is for choosing; the full text is one get away and costs tokens on every turn.
        item["description"] = shorten(req.description, 160)
        requests.append(item)

    scope = f" for {prop.address}" if prop is not None else ""
    status = f"{_label(args.status).lower()} " if args.status is not None else ""
    noun = "request" if len(rows) == 1 else "requests"
    presentation = Presentation(
        title=f"{len(rows)} {status}maintenance {noun}{scope}",
        items=[
            PresentationItem(
                title=f"{req.id} · {shorten(req.description, 80)}",
                fields=[f for f in _request_fields(req, p) if prop is None or f.label != "Property"],
            )
            for req, p in rows
        ],
        footer="Showing the newest 25." if truncated else None,
    )
    data = {"count": len(rows), "truncated": truncated, "requests": requests}
    return ToolResult(data=data, presentation=presentation, sources=[_source(req, p) for req, p in rows])


def _source(req: MaintenanceRequest, prop: Property | None) -> Source:
    where = f" at {prop.address}" if prop is not None else ""
    title = f"{req.id}: {req.issue_type.replace('_', ' ')}{where}"
    detail = f"{req.status.replace('_', ' ')} · {req.priority}"
    return Source(id=req.id, kind="maintenance_request", title=title, detail=detail, status=req.status)


# -- schedule --------------------------------------------------------------------------------------


class ScheduleMaintenanceArgs(BaseModel):
    property_id: str = Field(description="The property id, e.g. 'P-1001'.")
    issue_type: IssueType = Field(description="The kind of problem.")
    priority: Priority = Field(description="'emergency' only for safety risks or active damage (leaks, no heat).")
    description: RequestDescription = Field(
        description="What is wrong, in the tenant's or manager's words (3 to 2000 characters)."
    )
    preferred_date: dt.date | None = Field(
        default=None, description="Preferred visit date (YYYY-MM-DD), or null for the first available slot."
    )


async def _describe_schedule(args: ScheduleMaintenanceArgs, ctx: ToolContext) -> tuple[str, list[Detail]]:
    pid = normalize_property_id(args.property_id)
    try:
        async with ctx.db.session() as session:
            place = _place(await session.get(Property, pid), pid)
    except SQLAlchemyError:
        # The card must still render so a person can decide; the tool itself re-checks the id.
        place = f"{pid} (address lookup failed)"
    return "Schedule maintenance", [
        Detail(label="Property", value=place),
        Detail(label="Issue type", value=_label(args.issue_type)),
        Detail(label="Priority", value=_label(args.priority)),
        Detail(label="Description", value=args.description),
        Detail(
            label="Preferred date",
            value=args.preferred_date.isoformat() if args.preferred_date else "No preference",
        ),
    ]


async def _by_key(session: AsyncSession, key: str) -> MaintenanceRequest | None:
    query = select(MaintenanceRequest).where(MaintenanceRequest.idempotency_key == key)
    return (await session.scalars(query)).one_or_none()


# A new request changes the open-request count of get_property and the lists.
_MAINTENANCE_READS = ("get_property", "list_maintenance_requests")


@registry.tool(
    risky=True,
    read_only=False,
    describe=_describe_schedule,
    invalidates=_MAINTENANCE_READS,
    progress=lambda a: f"Scheduling maintenance for {normalize_property_id(a.property_id)}…",
)
async def schedule_maintenance(args: ScheduleMaintenanceArgs, ctx: ToolContext) -> ToolResult:
    """Create a scheduled maintenance request for a property. Needs a person's approval before it runs."""
    key = ctx.idempotency_key or f"auto:{uuid.uuid4()}"
    pid = normalize_property_id(args.property_id)
    async with ctx.db.session() as session:
        if (existing := await _by_key(session, key)) is not None:
            return await _with_property(session, existing, _ALREADY_CREATED.format(id=existing.id))
        # One day of slack: the requester's "today" may still be yesterday in UTC terms.
        if args.preferred_date is not None and args.preferred_date < _now().date() - dt.timedelta(days=1):
            return ToolResult.failure(
                f"preferred_date {args.preferred_date.isoformat()} is in the past; ask for a future date."
            )
        if (prop := await session.get(Property, pid)) is None:
            return ToolResult.failure(f"No property with id '{pid}'. Use search_properties to find ids.")
        request = MaintenanceRequest(
            id=f"MR-{uuid.uuid4().hex[:10].upper()}",
            property_id=pid,
            issue_type=args.issue_type,
            priority=args.priority,
            status="scheduled",
            description=args.description,
            preferred_date=args.preferred_date,
            created_at=_now(),
            created_by=ctx.user,
            idempotency_key=key,
        )
        session.add(request)
        try:
            await _tell_the_team(session, request, prop)  # flushes the request first: a duplicate key fails here
            await session.commit()
        except IntegrityError:
            # Another call with the same key committed first; its request is the answer.
            await session.rollback()
            if (existing := await _by_key(session, key)) is None:
                raise
            return await _with_property(session, existing, _ALREADY_CREATED.format(id=existing.id))
        created = f"Request {request.id} created: {_label(request.issue_type).lower()}, {request.priority} priority."
        return await _with_property(session, request, created)


# -- cancel ----------------------------------------------------------------------------------------


class CancelMaintenanceRequestArgs(BaseModel):
    request_id: str = Field(description="The maintenance request id, e.g. 'MR-5001'.")


async def _describe_cancel(args: CancelMaintenanceRequestArgs, ctx: ToolContext) -> tuple[str, list[Detail]]:
    rid = normalize_request_id(args.request_id)
    try:
        async with ctx.db.session() as session:
            req = await session.get(MaintenanceRequest, rid)
            prop = await session.get(Property, req.property_id) if req is not None else None
    except SQLAlchemyError:
        return "Cancel maintenance request", [Detail(label="Request", value=f"{rid} (lookup failed)")]
    if req is None:
        return "Cancel maintenance request", [Detail(label="Request", value=f"unknown request {rid}")]
    return "Cancel maintenance request", [
        Detail(label="Request", value=rid),
        *_request_fields(req, prop),
        Detail(label="Description", value=req.description),
    ]


@registry.tool(
    risky=True,
    read_only=False,
    describe=_describe_cancel,
    invalidates=_MAINTENANCE_READS,
    progress=lambda a: f"Cancelling {normalize_request_id(a.request_id)}…",
)
async def cancel_maintenance_request(args: CancelMaintenanceRequestArgs, ctx: ToolContext) -> ToolResult:
    """Cancel an open, scheduled or in-progress maintenance request. Needs a person's approval before it runs."""
    rid = normalize_request_id(args.request_id)
    async with ctx.db.session() as session:
        # A conditional UPDATE decides the race in the database: of two concurrent cancels only one
        # matches the still-active row.
        changed = (
            await session.execute(
                update(MaintenanceRequest)
                .where(MaintenanceRequest.id == rid, MaintenanceRequest.status.in_(ACTIVE_REQUEST_STATUSES))
                .values(
                    status="cancelled",
                    cancelled_at=_now(),
                    cancelled_by=ctx.user,
                    cancel_idempotency_key=ctx.idempotency_key,
                )
                .returning(MaintenanceRequest.id)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()
        req = (
            await session.scalars(
                select(MaintenanceRequest).where(MaintenanceRequest.id == rid).execution_options(populate_existing=True)
            )
        ).one_or_none()
        if changed is not None and req is not None:
            await _tell_the_team(session, req, await session.get(Property, req.property_id))
        await session.commit()
        if req is None:
            return ToolResult.failure(
                f"No maintenance request with id '{rid}'. Use list_maintenance_requests to find ids."
            )
        replay = (
            req.status == "cancelled"
            and ctx.idempotency_key is not None
            and req.cancel_idempotency_key == ctx.idempotency_key
        )
        if changed is None and not replay:
            return ToolResult.failure(
                f"Maintenance request {rid} is already {_label(req.status).lower()}; "
                "only open, scheduled or in-progress requests can be cancelled.",
                request_id=rid,
                status=req.status,
            )
        done = f"Request {rid} cancelled." if changed is not None else f"Request {rid} was already cancelled."
        return await _with_property(session, req, done)
