"""Tenant onboarding, a workflow of four typed steps: validate the tenant's data, create the tenant record,
generate the lease documents, send the welcome package. One approval covers the run (`onboard_tenant`);
`onboarding_status` answers where a run is, and `retry_onboarding` resumes a run that stopped at a step.

The steps themselves are in tools/onboarding_steps.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any, Final

from pydantic import BaseModel, Field
from sqlalchemy import select

from tools.dates import add_months
from tools.onboarding_steps import (
    create_tenant_record,
    generate_lease_documents,
    send_welcome_package,
    validate_tenant_data,
)
from tools.properties import normalize_property_id
from tools.registry import Registry, ToolContext, ToolResult, build_spec
from tools.tables import WorkflowRun
from tools.workflows import RunRefused, Step, Workflow, describe_run, outcome, resumable, run_workflow

registry = Registry()
MAX_MONTHS: Final = 36


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
