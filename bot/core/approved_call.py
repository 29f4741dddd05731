"""An approved call at the moment it runs: whether it still may (the tool installed, the requester's role, the
same arguments as when it was requested: versioned tools, the seeds' "function versioning", where a tool's
arguments are fingerprinted in ToolSpec.schema_hash and an approval records the version and fingerprint it was
made with, so stored arguments never reach code that reads them differently), and where its steps show."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from bot.core.gate import Gate
from bot.core.port import LiveReply
from bot.types import Approval, Progress, ProgressState
from tools.registry import StepSink, ToolSpec


async def runnable_call(spec: ToolSpec | None, approval: Approval, gate: Gate) -> tuple[ToolSpec, BaseModel] | str:
    """The approved call as it may run now (the installed tool and the stored arguments, validated for it), or
    why it may not: the tool is gone, the requester's role lost it, or a deploy changed its arguments."""
    if spec is None:
        return f"The tool {approval.tool} is no longer installed."
    if (reason := await gate.no_longer_allowed(approval)) is not None:
        return reason
    checked = checked_arguments(spec, approval)
    return checked if isinstance(checked, str) else (spec, checked)


def checked_arguments(spec: ToolSpec, approval: Approval) -> BaseModel | str:
    """The approval's stored arguments validated for the installed tool, or why they may not run (in the
    user's words)."""
    name = spec.name.replace("_", " ")
    if approval.schema_hash is not None and approval.schema_hash != spec.schema_hash:
        made = f"version {approval.tool_version}" if approval.tool_version is not None else "an earlier version"
        return (
            f"This request was made for {made} of {name}, and propbot has since been updated to version "
            f"{spec.version}, which takes different details. Nothing was run: please ask again."
        )
    try:
        return spec.args_model.model_validate(approval.arguments)
    except ValidationError:
        return f"This request no longer fits {name} as propbot runs it now. Nothing was run: please ask again."


def steps_on(live: LiveReply, approval_id: str) -> StepSink:
    """Where an approved call's steps (a workflow run's) show: each its own line of the live answer, updated in
    place as it runs and finishes."""

    async def show(key: str, title: str, state: str, detail: str) -> None:
        await live.progress(Progress(id=f"{approval_id}:{key}", title=title, state=ProgressState(state), detail=detail))

    return show
