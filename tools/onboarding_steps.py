"""The four steps of tenant onboarding (tools/onboarding.py declares the workflow): validate the tenant's data,
create the tenant record, generate the lease and its PDF, send the welcome package. Each is a typed tool, idempotent
on the key the workflow gives it (`<run id>:<step>`).

Services come from `ToolContext.extras`: `notifier` (a tools.documents Notifier; LogNotifier when absent),
`documents` (a DocumentStore; the database's when absent) and `outbox` (tools.outbox.Outbox; one on the database
when absent).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy import and_, insert, select
from sqlalchemy.exc import IntegrityError

from tools import outbox
from tools.documents.db_store import DatabaseDocumentStore
from tools.documents.lease import LeaseTerms, UnsupportedCharacters, render_lease_pdf
from tools.documents.mail_outbox import email_deliverer, email_payload
from tools.documents.notify import ADDRESS, LogNotifier, Notifier, OutboundMessage
from tools.documents.store import DocumentStore, new_document_id
from tools.outbox import EMAIL, Outbox
from tools.presentation import DocumentLink
from tools.properties import full_address, normalize_property_id
from tools.registry import ToolContext, ToolResult
from tools.tables import LIVE_LEASE_STATUSES, Lease, Property, Tenant
from tools.tenants import normalize_tenant_id

_DEFAULT_NOTIFIER: Final = LogNotifier()


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4).upper()}"


# -- step 1 --------------------------------------------------------------------------------------------------
class ValidateTenantArgs(BaseModel):
    tenant_name: str
    email: str
    property_id: str
    start_date: dt.date
    end_date: dt.date
    monthly_rent: int
    deposit: int


async def validate_tenant_data(args: ValidateTenantArgs, ctx: ToolContext) -> ToolResult:
    """Check a new tenant's details: a real e-mail address, a known property free for the lease's dates, a positive
    rent. Changes nothing."""
    problems = []
    if not args.tenant_name.strip():
        problems.append("the tenant's name is empty")
    if not ADDRESS.fullmatch(args.email.strip()):
        problems.append(f"{args.email!r} is not an e-mail address")
    if args.end_date <= args.start_date:
        problems.append("the lease ends before it starts")
    if args.monthly_rent <= 0 or args.deposit < 0:
        problems.append("the rent must be positive and the deposit not negative")
    pid = normalize_property_id(args.property_id)
    async with ctx.db.session() as session:
        prop = await session.get(Property, pid)
        overlapping = (
            await session.execute(
                select(Lease.id).where(
                    Lease.property_id == pid,
                    Lease.status.in_(LIVE_LEASE_STATUSES),
                    and_(Lease.start_date < args.end_date, Lease.end_date > args.start_date),
                )
            )
        ).first()
    if prop is None:
        problems.append(f"there is no property {pid}")
    elif overlapping is not None:
        problems.append(f"{pid} is already leased ({overlapping[0]}) for part of those dates")
    if problems:
        return ToolResult.failure("; ".join(problems).capitalize() + ".")
    assert prop is not None
    return ToolResult(data={"property_id": pid, "address": full_address(prop)}, summary="The details check out.")


# -- step 2 --------------------------------------------------------------------------------------------------
class CreateTenantArgs(BaseModel):
    tenant_name: str
    email: str
    phone: str | None
    property_id: str


async def create_tenant_record(args: CreateTenantArgs, ctx: ToolContext) -> ToolResult:
    """Create the tenant's record; idempotent on the step's key (a re-run returns the record it made)."""
    key = ctx.idempotency_key
    async with ctx.db.session() as session:
        if key is not None and (found := await _by_key(session, Tenant, key)) is not None:
            return ToolResult(data={"tenant_id": found.id}, summary=f"Tenant record {found.id} exists.")
        tenant = Tenant(
            id=_new_id("TN"),
            full_name=" ".join(args.tenant_name.split()),
            email=args.email.strip(),
            phone=args.phone,
            property_id=normalize_property_id(args.property_id),
            created_at=dt.datetime.now(dt.UTC),
            created_by=ctx.user,
            idempotency_key=key,
        )
        tenant = await _insert_once(session, tenant, key)
    return ToolResult(data={"tenant_id": tenant.id}, summary=f"Tenant record {tenant.id} created.")


async def _by_key(session: Any, table: type[Tenant] | type[Lease], key: str) -> Any:
    return (await session.execute(select(table).where(table.idempotency_key == key))).scalar_one_or_none()


async def _insert_once(session: Any, row: Any, key: str | None) -> Any:
    """Insert `row`, or return the row a concurrent run of the same step inserted under the same unique key."""
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        found = await _by_key(session, type(row), key or "")
        if found is None:
            raise
        return found
    return row


# -- step 3 --------------------------------------------------------------------------------------------------
class LeaseDocumentsArgs(BaseModel):
    tenant_id: str
    property_id: str
    start_date: dt.date
    end_date: dt.date
    monthly_rent: int
    deposit: int


async def generate_lease_documents(args: LeaseDocumentsArgs, ctx: ToolContext) -> ToolResult:
    """Create the lease (pending) and its PDF summary; idempotent on the step's key. The unit must still be free
    for the lease's dates: checked again here, in the same serialised transaction as the insert, since step 1's
    check may be long stale (a run that waited for its approval, or resumed days later)."""
    key = ctx.idempotency_key
    placed = await _place_lease(args, ctx, key)
    if isinstance(placed, str):
        return ToolResult.failure(placed)
    lease = placed
    async with ctx.db.session() as session:
        tenant = await session.get(Tenant, lease.tenant_id)
        prop = await session.get(Property, lease.property_id)
    if tenant is None or prop is None:
        return ToolResult.failure(f"The lease {lease.id} names a tenant or property that is gone.")
    document_id = lease.document_id
    assert document_id is not None  # chosen with the lease, so a re-run stores the same document again
    store: DocumentStore = ctx.extras.get("documents") or DatabaseDocumentStore(ctx.db)
    if await store.get(document_id) is None:
        terms = LeaseTerms(
            lease_id=lease.id,
            tenant_name=tenant.full_name,
            tenant_email=tenant.email,
            tenant_phone=tenant.phone,
            property_id=prop.id,
            property_address=full_address(prop),
            start_date=lease.start_date,
            end_date=lease.end_date,
            monthly_rent=lease.monthly_rent,
            deposit=lease.deposit,
            manager_name=ctx.extras.get("manager_name", "Property management"),
        )
        try:
            pdf = await render_lease_pdf(terms)
        except UnsupportedCharacters as exc:
            return ToolResult.failure(str(exc))
        await store.put(f"lease-{lease.id}.pdf", "application/pdf", pdf, ctx.conversation_key, document_id)
    filename = f"lease-{lease.id}.pdf"
    return ToolResult(
        data={"lease_id": lease.id, "document_id": document_id, "filename": filename},
        summary=f"Lease {lease.id} and its PDF are ready.",
        documents=[DocumentLink(id=document_id, filename=filename, title=f"Lease {lease.id} for {tenant.full_name}")],
    )


async def _place_lease(args: LeaseDocumentsArgs, ctx: ToolContext, key: str | None) -> Lease | str:
    """This step's lease: the one it made before, or a new one if the unit is free for its dates; else why not.
    One lease per unit and date at a time holds for every process (`Database.serialized`), and on PostgreSQL
    the exclusion constraint backs it (tools/invariants.py)."""
    pid = normalize_property_id(args.property_id)
    try:
        async with ctx.db.serialized(f"lease:{pid}") as conn:
            if (settled := await _made_or_refused(conn, key, pid, args)) is not None:
                return settled
            row = {
                "id": _new_id("LS"),
                "tenant_id": normalize_tenant_id(args.tenant_id),
                "property_id": pid,
                "start_date": args.start_date,
                "end_date": args.end_date,
                "monthly_rent": args.monthly_rent,
                "deposit": args.deposit,
                "status": "pending",
                "document_id": new_document_id(),
                "created_at": dt.datetime.now(dt.UTC),
                "idempotency_key": key,
            }
            await conn.execute(insert(Lease).values(**row))
            return Lease(**row)
    except IntegrityError:
        # Only a writer outside propbot's serialised step gets here (the constraint caught what the check could
        # not see), or the same step in another process under the same key: read which.
        async with ctx.db.serialized(f"lease:{pid}") as conn:
            settled = await _made_or_refused(conn, key, pid, args)
        return settled or f"{pid} could not be leased for those dates; nothing was created."


async def _made_or_refused(conn: Any, key: str | None, pid: str, args: LeaseDocumentsArgs) -> Lease | str | None:
    """The lease this step made under `key` before, or why the unit is not free; None: it may be leased now."""
    if key is not None:
        found = (await conn.execute(select(Lease).where(Lease.idempotency_key == key))).first()
        if found is not None:
            return Lease(**found._asdict())
    return await _overlapping(conn, pid, args.start_date, args.end_date)


async def _overlapping(conn: Any, pid: str, start: dt.date, end: dt.date) -> str | None:
    """Why `pid` is not free from `start` to `end` (a live lease overlaps), in words for the user; None if free."""
    found = (
        await conn.execute(
            select(Lease.start_date, Lease.end_date, Tenant.full_name)
            .join(Tenant, Tenant.id == Lease.tenant_id)
            .where(
                Lease.property_id == pid,
                Lease.status.in_(LIVE_LEASE_STATUSES),
                and_(Lease.start_date < end, Lease.end_date > start),
            )
            .order_by(Lease.start_date)
        )
    ).first()
    if found is None:
        return None
    return (
        f"{pid} was leased to {found.full_name} from {found.start_date} to {found.end_date} while this request "
        "waited; no lease was created."
    )


# -- step 4 --------------------------------------------------------------------------------------------------
class WelcomeArgs(BaseModel):
    tenant_id: str
    lease_id: str


async def send_welcome_package(args: WelcomeArgs, ctx: ToolContext) -> ToolResult:
    """Send the welcome message to the tenant's e-mail address through the configured notifier, once per run."""
    async with ctx.db.session() as session:
        tenant = await session.get(Tenant, normalize_tenant_id(args.tenant_id))
        lease = await session.get(Lease, args.lease_id)
        prop = await session.get(Property, lease.property_id) if lease is not None else None
    if tenant is None or lease is None or prop is None:
        return ToolResult.failure("The tenant or the lease of this run is gone.")
    text = (
        f"Dear {tenant.full_name},\n\nWelcome to {full_address(prop)}. Your lease {lease.id} runs from "
        f"{lease.start_date:%B %-d, %Y} to {lease.end_date:%B %-d, %Y} at ${lease.monthly_rent:,} a month, "
        f"with a deposit of ${lease.deposit:,}.\n\nReply to this message with any question before you move in.\n"
    )
    notifier: Notifier = ctx.extras.get("notifier") or _DEFAULT_NOTIFIER
    message = OutboundMessage(
        to=tenant.email,
        subject=f"Welcome to {prop.address}",
        text=text,
        idempotency_key=ctx.idempotency_key or f"welcome:{lease.id}",
    )
    # Recorded before it is handed to the mail server: a process that stops from here on leaves the row, and the
    # outbox sends it from any process (a re-run of this step finds the row and does not send a second).
    effect_id = f"email:{message.idempotency_key}"
    async with ctx.db.session() as session:
        await outbox.record(session, effect_id, EMAIL, email_payload(message))
        await session.commit()
    sender: Outbox = ctx.extras.get("outbox") or Outbox(ctx.db)
    row = await sender.deliver(effect_id, email_deliverer(notifier))
    if row is not None and row.status == "failed":
        return ToolResult.failure(f"The welcome message to {tenant.email} could not be sent ({row.error}).")
    if row is None or row.status != "done":
        return ToolResult(
            data={"to": tenant.email, "sent": False, "queued": True},
            summary=f"Welcome package for {tenant.email} queued: the mail server has not taken it yet, and propbot "
            "keeps trying.",
        )
    receipt = json.loads(row.receipt or "{}")
    verb = "sent" if receipt.get("sent") else "recorded (no mail server is configured)"
    return ToolResult(
        data={"to": tenant.email, "message_id": receipt.get("message_id"), "sent": bool(receipt.get("sent"))},
        summary=f"Welcome package {verb} for {tenant.email}.",
    )
