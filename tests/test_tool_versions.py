"""Versioned tools: an approval records the tool's version and argument fingerprint; after a deploy that changes
the arguments, deciding it refuses plainly and runs nothing, while a compatible change runs as usual."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from bot.types import ApprovalStatus, DecisionOutcome
from tests.support.fake_openai import call, calls, text
from tests.support.harness import MANAGER, STAFF, Harness, start_process
from tools.registry import Registry, ToolContext, ToolResult, builtin_tools

ran: list[str] = []


class RepaintV1(BaseModel):
    property_id: str = Field(description="the property, e.g. P-1001")


class RepaintV2(BaseModel):
    property_id: str = Field(description="the property, e.g. P-1001")
    colour: str = Field(description="the new colour")


def tools_with(version: int, model: type[BaseModel]) -> Registry:
    registry = builtin_tools()
    extra = Registry()

    async def repaint(args: Any, ctx: ToolContext) -> ToolResult:
        """Repaint a property."""
        ran.append(f"v{version}:{args.property_id}")
        return ToolResult(data={"repainted": args.property_id}, summary=f"{args.property_id} repainted.")

    repaint.__annotations__["args"] = model
    extra.tool(risky=True, version=version)(repaint)
    return registry.include(extra)


PERMISSIONS = """\
default_role: viewer
roles:
  viewer: {tools: [search_properties]}
  staff: {tools: [repaint]}
  manager: {tools: ["*"], approves: ["*"]}
users:
  "slack:T1:UMANAGER": manager
  "slack:T1:USTAFF": staff
"""


async def requested(h: Harness) -> str:
    h.fake.push(calls(call("repaint", {"property_id": "P-1001"})), text("Waiting for a manager."))
    replies = await h.say(STAFF, "repaint P-1001")
    [approval_id] = [r.approval.id for r in replies if r.kind == "approval"]
    return approval_id


async def test_an_approval_made_under_version_1_is_refused_after_an_incompatible_version_2(
    make_harness: Any,
) -> None:
    ran.clear()
    h: Harness = await make_harness(tools=tools_with(1, RepaintV1), permissions=PERMISSIONS)
    approval_id = await requested(h)
    stored = await h.store.get_approval(approval_id)
    assert stored is not None and stored.tool_version == 1
    assert stored.schema_hash == tools_with(1, RepaintV1).get("repaint").schema_hash  # type: ignore[union-attr]

    # The deploy: the same tool, version 2, which takes a colour too.
    deployed = start_process(h.settings, h.permissions, h.db, tools=tools_with(2, RepaintV2))
    h.extra.append(deployed)
    h.fake.push(text("The request could not run."))
    result = await h.decide(approval_id, MANAGER, process=deployed)

    assert ran == []  # nothing ran, neither the old code nor the new
    assert result.outcome is DecisionOutcome.FAILED, result.outcome
    final = await h.store.get_approval(approval_id)
    assert final is not None and final.status is ApprovalStatus.FAILED
    assert final.result is not None and final.result["executed"] is False
    assert "made for version 1 of repaint" in final.result["error"] and "version 2" in final.result["error"]
    assert "Nothing was run" in final.result["error"]


async def test_a_compatible_change_runs_as_usual(make_harness: Any) -> None:
    ran.clear()
    h: Harness = await make_harness(tools=tools_with(1, RepaintV1), permissions=PERMISSIONS)
    approval_id = await requested(h)
    deployed = start_process(h.settings, h.permissions, h.db, tools=tools_with(2, RepaintV1))  # same arguments
    h.extra.append(deployed)
    h.fake.push(text("Repainted."))
    result = await h.decide(approval_id, MANAGER, process=deployed)
    assert result.outcome is DecisionOutcome.DONE, result.message
    assert ran == ["v2:P-1001"]
