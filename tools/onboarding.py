"""Tenant onboarding, a workflow of four typed steps: validate the tenant's data, create the tenant record,
generate the lease documents, send the welcome package. One approval covers the run (`onboard_tenant`);
`onboarding_status` answers where a run is, and `retry_onboarding` resumes a run that stopped at a step.

Services come from `ToolContext.extras`: `notifier` (a tools.documents Notifier; LogNotifier when absent) and
`documents` (a DocumentStore; the database's when absent).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import replace
from typing import Any, Final

from pydantic import BaseModel, Field
from sqlalchemy import and_, insert, select
from sqlalchemy.exc import IntegrityError

from tools import outbox
from tools.dates import add_months
from tools.documents.db_store import DatabaseDocumentStore
from tools.documents.lease import LeaseTerms, UnsupportedCharacters, render_lease_pdf
from tools.documents.mail_outbox import email_deliverer, email_payload
from tools.documents.notify import ADDRESS, LogNotifier, Notifier, OutboundMessage
from tools.documents.store import DocumentStore, new_document_id
from tools.outbox import EMAIL, Outbox
from tools.presentation import DocumentLink
from tools.properties import full_address, normalize_property_id
from tools.registry import Registry, ToolContext, ToolResult, build_spec
from tools.tables import LIVE_LEASE_STATUSES, Lease, Property, Tenant, WorkflowRun
from tools.tenants import normalize_tenant_id
from tools.workflows import RunRefused, Step, Workflow, describe_run, outcome, resumable, run_workflow

registry = Registry()
MAX_MONTHS: Final = 36
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
            if key is not None:
                found = (await conn.execute(select(Lease).where(Lease.idempotency_key == key))).first()
                if found is not None:
                    return Lease(**found._asdict())
            taken = await _overlapping(conn, pid, args.start_date, args.end_date)
            if taken is not None:
                return taken
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
            if key is not None:
                found = (await conn.execute(select(Lease).where(Lease.idempotency_key == key))).first()
                if found is not None:
                    return Lease(**found._asdict())
            taken = await _overlapping(conn, pid, args.start_date, args.end_date)
        return taken or f"{pid} could not be leased for those dates; nothing was created."


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


# -- the workflow --------------------------------------------------------------------------------------------
class OnboardTenantArgs(BaseModel):
    tenant_name: str = Field(description="The new tenant's full name, e.g. 'Jane Doe'.")
    email: str = Field(description="The tenant's e-mail address: the welcome package goes there.")
    phone: str | None = Field(description="The tenant's phone number, or null.")
    property_id: str = Field(description="The property they rent, e.g. 'P-1001'.")
    start_date: dt.date = Field(description="The lease's first day, YYYY-MM-DD.")
    months: int = Field(ge=1, le=MAX_MONTHS, description="The lease's length in months (1 to 36).")
    monthly_rent: int = Field(gt=0, description="Monthly rent in whole US dollars.")
    deposit: int | None = Field(description="Deposit in whole US dollars; null for one month's rent.")


def _deposit(r: OnboardTenantArgs) -> int:
    return r.deposit if r.deposit is not None else r.monthly_rent


def _lease(r: OnboardTenantArgs) -> dict[str, Any]:
    end = add_months(r.start_date, r.months)
    return {"start_date": r.start_date, "end_date": end, "monthly_rent": r.monthly_rent, "deposit": _deposit(r)}


ONBOARDING = Workflow(
    id="onboard_tenant",
    version=1,
    title="Tenant onboarding",
    description=(
        "Onboard a new tenant to a property in one approved run of four steps: validate their details, create the "
        "tenant record, generate the lease documents (PDF), send the welcome package by e-mail. Needs a manager's "
        "approval once for the whole run. Use onboarding_status for a run in progress."
    ),
    request_model=OnboardTenantArgs,
    subject=lambda r: f"{r.tenant_name} to {normalize_property_id(r.property_id)}",
    steps=(
        Step(
            "validate",
            "Validate the tenant's details",
            build_spec(validate_tenant_data, name="validate_tenant_data"),
            lambda r, _: {"tenant_name": r.tenant_name, "email": r.email, "property_id": r.property_id, **_lease(r)},
            lambda r: f"check {r.email}, and that {normalize_property_id(r.property_id)} is free from {r.start_date}",
        ),
        Step(
            "tenant",
            "Create the tenant record",
            build_spec(create_tenant_record, name="create_tenant_record", risky=True, read_only=False),
            lambda r, _: {
                "tenant_name": r.tenant_name,
                "email": r.email,
                "phone": r.phone,
                "property_id": r.property_id,
            },
            lambda r: f"{r.tenant_name}, {r.email}" + (f", {r.phone}" if r.phone else ""),
        ),
        Step(
            "lease",
            "Generate the lease documents",
            build_spec(generate_lease_documents, name="generate_lease_documents", risky=True, read_only=False),
            lambda r, out: {"tenant_id": out["tenant"]["tenant_id"], "property_id": r.property_id, **_lease(r)},
            lambda r: (
                f"${r.monthly_rent:,}/month from {r.start_date} to {add_months(r.start_date, r.months)}, "
                f"deposit ${_deposit(r):,}; a PDF summary"
            ),
        ),
        Step(
            "welcome",
            "Send the welcome package",
            build_spec(send_welcome_package, name="send_welcome_package", risky=True, read_only=False),
            lambda r, out: {"tenant_id": out["tenant"]["tenant_id"], "lease_id": out["lease"]["lease_id"]},
            lambda r: f"an e-mail to {r.email}",
        ),
    ),
)
registry.register(ONBOARDING.start)


class OnboardingStatusArgs(BaseModel):
    run_id: str | None = Field(description="The run id, or null for the latest onboarding in this conversation.")
    tenant_name: str | None = Field(description="Part of the tenant's name to find their onboarding, or null.")


async def _find_run(ctx: ToolContext, run_id: str | None, name: str | None, failed_only: bool = False) -> Any:
    """The latest matching run the person asking may see (their own workspace or tenant): a run of another one
    reads as no run at all, id or not."""
    platform, workspace = ctx.conversation_key.split(":")[:2]
    query = select(WorkflowRun).where(
        WorkflowRun.workflow == ONBOARDING.id,
        WorkflowRun.conversation_key.startswith(f"{platform}:{workspace}:", autoescape=True),
    )
    if run_id:
        query = query.where(WorkflowRun.id == run_id.strip())
    elif name:
        query = query.where(WorkflowRun.subject.ilike(f"%{name.strip()}%"))
    else:
        query = query.where(WorkflowRun.conversation_key == ctx.conversation_key)
    if failed_only:
        query = query.where(WorkflowRun.status == "failed")
    async with ctx.db.session() as session:
        runs = (await session.execute(query.order_by(WorkflowRun.created_at.desc()).limit(20))).scalars()
        return next((run for run in runs if ctx.may_see(run.conversation_key)), None)


@registry.tool(progress=lambda a: "Looking up the onboarding…")
async def onboarding_status(args: OnboardingStatusArgs, ctx: ToolContext) -> ToolResult:
    """Where a tenant onboarding run is: each step's state, the current step, and why a failed one stopped."""
    run = await _find_run(ctx, args.run_id, args.tenant_name)
    if run is None:
        return ToolResult.failure("No onboarding run found (one starts once its approval is given).")
    shown = outcome(ONBOARDING, run)
    return ToolResult(data=describe_run(run), presentation=shown.presentation)


class RetryOnboardingArgs(BaseModel):
    run_id: str | None = Field(description="The run id, or null for the latest stopped onboarding here.")


@registry.tool(read_only=False, timeout=ONBOARDING.timeout, progress=lambda a: "Resuming the onboarding…")
async def retry_onboarding(args: RetryOnboardingArgs, ctx: ToolContext) -> ToolResult:
    """Resume a tenant onboarding that stopped at a failed step, from that step (done steps are never redone)."""
    run = await _find_run(ctx, args.run_id, None, failed_only=args.run_id is None)
    if run is None:
        return ToolResult.failure("No stopped onboarding run found to retry.")
    # Resuming runs the approved call again: whoever asked for it and whoever approved it must still be allowed.
    if ctx.recheck is not None and (reason := await ctx.recheck(run.id)) is not None:
        return ToolResult.failure(reason, executed=False)
    try:
        request = resumable(ONBOARDING, run)
    except RunRefused as exc:
        return ToolResult.failure(str(exc), executed=False)
    return await run_workflow(ONBOARDING, request, replace(ctx, idempotency_key=run.id))
