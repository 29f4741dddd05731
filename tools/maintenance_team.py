"""What the maintenance team does from its channel: mark a request in progress or done (the buttons on the notice
propbot posts there when a request is scheduled). A tool like any other, so roles decide who may."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, Field
from sqlalchemy import update

from tools.maintenance import TEAM_MARKS, TEAM_TRANSITIONS, _with_property, marks_from, normalize_request_id
from tools.registry import Registry, ToolContext, ToolResult
from tools.tables import MaintenanceRequest

registry = Registry()

_FROM: Final = TEAM_TRANSITIONS
MARKS: Final = TEAM_MARKS
__all__ = ["MARKS", "marks_from", "registry", "update_maintenance_status"]


class UpdateStatusArgs(BaseModel):
    request_id: str = Field(description="The maintenance request id, e.g. 'MR-5001'.")
    status: Literal["in_progress", "completed"] = Field(description="in_progress or completed.")


@registry.tool(read_only=False, progress=lambda a: f"Updating {normalize_request_id(a.request_id)}…")
async def update_maintenance_status(args: UpdateStatusArgs, ctx: ToolContext) -> ToolResult:
    """Mark a maintenance request in progress or completed (the maintenance team's own update)."""
    rid = normalize_request_id(args.request_id)
    async with ctx.db.session() as session:
        changed = (
            await session.execute(
                update(MaintenanceRequest)
                .where(MaintenanceRequest.id == rid, MaintenanceRequest.status.in_(_FROM[args.status]))
                .values(status=args.status)
                .returning(MaintenanceRequest.id)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()
        await session.commit()
        req = await session.get(MaintenanceRequest, rid, populate_existing=True)
        if req is None:
            return ToolResult.failure(f"No maintenance request with id '{rid}'.")
        if changed is None and req.status != args.status:
            return ToolResult.failure(f"{rid} is {req.status.replace('_', ' ')}; it cannot be marked that way now.")
        said = "in progress" if args.status == "in_progress" else "done"
        # The team made this change: nothing to tell it (no notice is recorded).
        return await _with_property(session, req, f"{rid} marked {said} by the maintenance team.")
