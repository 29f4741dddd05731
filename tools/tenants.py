"""Read-only tools over tenants and their leases: find a tenant, look one up, read a lease."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from tools.presentation import Detail, Presentation, PresentationItem, Source
from tools.properties import normalize_property_id
from tools.registry import Registry, ToolContext, ToolResult
from tools.tables import Lease, Tenant

registry = Registry()

SEARCH_LIMIT: Final = 20


def normalize_tenant_id(raw: str) -> str:
    """' tn-3001 ' -> 'TN-3001'; a bare number gets the 'TN-' prefix."""
    cleaned = raw.strip().upper()
    return f"TN-{cleaned}" if cleaned.isdigit() else cleaned


def tenant_data(tenant: Tenant) -> dict[str, Any]:
    return {
        "tenant_id": tenant.id,
        "name": tenant.full_name,
        "email": tenant.email,
        "phone": tenant.phone,
        "property_id": tenant.property_id,
    }


def lease_data(lease: Lease) -> dict[str, Any]:
    return {
        "lease_id": lease.id,
        "tenant_id": lease.tenant_id,
        "property_id": lease.property_id,
        "start_date": lease.start_date.isoformat(),
        "end_date": lease.end_date.isoformat(),
        "monthly_rent": lease.monthly_rent,
        "deposit": lease.deposit,
        "status": lease.status,
        "has_document": lease.document_id is not None,
    }


def _source(tenant: Tenant) -> Source:
    return Source(id=tenant.id, kind="tenant", title=tenant.full_name, detail=tenant.property_id)


class SearchTenantsArgs(BaseModel):
    name: str | None = Field(description="Part of the tenant's name, e.g. 'Moreno'; null for any.")
    property_id: str | None = Field(description="Only tenants of this property, e.g. 'P-1004'; null for any.")


@registry.tool(progress=lambda a: f"Searching tenants{' named ' + a.name if a.name else ''}…")
async def search_tenants(args: SearchTenantsArgs, ctx: ToolContext) -> ToolResult:
    """Find tenants by part of their name and/or by property. Returns at most 20, with their contact and property."""
    query = select(Tenant).order_by(Tenant.full_name).limit(SEARCH_LIMIT)
    if args.name and args.name.strip():
        words = args.name.strip().lower().split()
        query = query.where(*(func.lower(Tenant.full_name).contains(word) for word in words))
    if args.property_id:
        query = query.where(Tenant.property_id == normalize_property_id(args.property_id))
    async with ctx.db.session() as session:
        found = list((await session.execute(query)).scalars())
    if not found:
        return ToolResult(data={"tenants": []}, summary="No tenant matches.")
    return ToolResult(
        data={"tenants": [tenant_data(t) for t in found]},
        presentation=Presentation(
            title=f"{len(found)} tenant(s)",
            items=[
                PresentationItem(title=t.full_name, fields=[Detail(label="Property", value=t.property_id)])
                for t in found
            ],
        ),
        sources=[_source(t) for t in found],
    )


class GetTenantArgs(BaseModel):
    tenant_id: str = Field(description="The tenant id from search_tenants, e.g. 'TN-3001'.")


@registry.tool(progress=lambda a: f"Looking up {normalize_tenant_id(a.tenant_id)}…")
async def get_tenant(args: GetTenantArgs, ctx: ToolContext) -> ToolResult:
    """One tenant's contact details, property and leases."""
    tid = normalize_tenant_id(args.tenant_id)
    async with ctx.db.session() as session:
        tenant = await session.get(Tenant, tid)
        if tenant is None:
            return ToolResult.failure(f"No tenant with id '{tid}'. Use search_tenants to find ids.")
        leases = list((await session.execute(select(Lease).where(Lease.tenant_id == tid))).scalars())
    return ToolResult(
        data={**tenant_data(tenant), "leases": [lease_data(lease) for lease in leases]},
        presentation=Presentation(
            title=tenant.full_name,
            fields=[
                Detail(label="ID", value=tenant.id),
                Detail(label="Property", value=tenant.property_id),
                Detail(label="E-mail", value=tenant.email),
                *([Detail(label="Phone", value=tenant.phone)] if tenant.phone else []),
            ],
        ),
        sources=[_source(tenant)],
    )


class GetLeaseArgs(BaseModel):
    lease_id: str | None = Field(description="The lease id, e.g. 'LS-3001'; null to give a tenant id instead.")
    tenant_id: str | None = Field(description="A tenant id, e.g. 'TN-3001', for that tenant's latest lease.")


@registry.tool(progress=lambda a: "Reading the lease…")
async def get_lease(args: GetLeaseArgs, ctx: ToolContext) -> ToolResult:
    """A lease's dates, rent, deposit and status, by lease id or by tenant (their latest lease)."""
    if not (args.lease_id or args.tenant_id):
        return ToolResult.failure("Give a lease_id or a tenant_id.")
    query = select(Lease)
    if args.lease_id:
        query = query.where(Lease.id == args.lease_id.strip().upper())
    else:
        query = query.where(Lease.tenant_id == normalize_tenant_id(args.tenant_id or ""))
    async with ctx.db.session() as session:
        lease = (await session.execute(query.order_by(Lease.start_date.desc()).limit(1))).scalar_one_or_none()
    if lease is None:
        return ToolResult.failure("No such lease. Use get_tenant to see a tenant's leases.")
    return ToolResult(
        data=lease_data(lease),
        presentation=Presentation(
            title=f"Lease {lease.id}",
            fields=[
                Detail(label="Tenant", value=lease.tenant_id),
                Detail(label="Property", value=lease.property_id),
                Detail(label="Term", value=f"{lease.start_date.isoformat()} to {lease.end_date.isoformat()}"),
                Detail(label="Rent", value=f"${lease.monthly_rent:,}/month"),
                Detail(label="Deposit", value=f"${lease.deposit:,}"),
                Detail(label="Status", value=lease.status),
            ],
        ),
    )
