"""Workflows as data: a declared sequence of typed steps, run with its state stored per run.

A `Workflow` has an id, a version and steps; each `Step` is a tool (a typed function, `ToolSpec`) and how its
arguments come from the request and the outputs of the steps before it. `Workflow.start` is the one risky
tool the model calls: its approval covers every step, and the approved call runs `run_workflow`, which the
approval machinery already runs exactly once (and re-runs, under the same idempotency key, when a worker died
mid-way). The run's state is a `WorkflowRun` row keyed by that key: a re-run skips every step recorded done and
starts at the first that is not, so no step's effect happens twice as long as each step is idempotent on the key
it is given (`<run id>:<step key>`), as the built-in steps are (unique columns in the database).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from tools.presentation import Detail, DocumentLink, Presentation, PresentationItem
from tools.registry import Describer, ToolContext, ToolResult, ToolSpec, build_spec
from tools.tables import WorkflowRun

# A failed run may be retried this long; after that it is abandoned, like an approval that expired.
RETRY_WINDOW: Final = dt.timedelta(days=7)
MARKS: Final = {"pending": "○", "running": "…", "done": "✓", "failed": "✗"}

Arguments = Callable[[Any, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    key: str  # stable within the workflow: it names the step's idempotency key and its stored state
    title: str  # "Create the tenant record"
    spec: ToolSpec
    arguments: Arguments  # (the validated request, outputs of earlier steps by key) -> this step's arguments
    plan: Callable[[Any], str]  # (the request) -> what this step will do, in words, for the approval card


@dataclass(frozen=True)
class Workflow:
    id: str  # the start tool's name, e.g. "onboard_tenant"
    version: int
    title: str  # "Tenant onboarding"
    description: str  # the start tool's description: what the model reads
    request_model: type[BaseModel]
    steps: tuple[Step, ...]
    subject: Callable[[Any], str]  # (the request) -> whom the run is about, e.g. the tenant's name
    timeout: float = 120.0

    @functools.cached_property
    def start(self) -> ToolSpec:
        """The risky tool that asks for one approval of the whole run and, once approved, runs it."""

        async def start(args: Any, ctx: ToolContext) -> ToolResult:
            return await run_workflow(self, args, ctx)

        start.__doc__ = self.description
        start.__annotations__ = {"args": self.request_model, "ctx": ToolContext, "return": ToolResult}
        return build_spec(
            start,
            name=self.id,
            risky=True,
            read_only=False,
            timeout=self.timeout,
            version=self.version,
            describe=self._describe(),
            progress=lambda args: f"{self.title} for {self.subject(args)}…",
        )

    def _describe(self) -> Describer:
        async def describe(args: Any, ctx: ToolContext) -> tuple[str, list[Detail]]:
            details = [
                Detail(label=f"Step {i} of {len(self.steps)}: {step.title}", value=step.plan(args))
                for i, step in enumerate(self.steps, 1)
            ]
            return f"{self.title}: {self.subject(args)}", details

        return describe


class RunRefused(Exception):
    """A run that may not (re)start: unknown, done, abandoned, or made under an incompatible version."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _initial_steps(workflow: Workflow) -> list[dict[str, Any]]:
    return [{"key": s.key, "title": s.title, "state": "pending", "runs": 0, "output": None} for s in workflow.steps]


async def _load_or_create(workflow: Workflow, request: BaseModel, ctx: ToolContext, run_id: str) -> WorkflowRun:
    async with ctx.db.session() as session:
        run = await session.get(WorkflowRun, run_id)
        if run is None:
            now = _now()
            run = WorkflowRun(
                id=run_id,
                workflow=workflow.id,
                version=workflow.version,
                schema_hash=workflow.start.schema_hash,
                conversation_key=ctx.conversation_key,
                requested_by=ctx.user,
                subject=workflow.subject(request)[:200],
                status="running",
                request=request.model_dump_json(),
                steps=json.dumps(_initial_steps(workflow)),
                created_at=now,
                updated_at=now,
            )
            session.add(run)
            try:
                await session.commit()
            except IntegrityError:  # the same run started at once elsewhere (a redelivered approval): use its row
                await session.rollback()
                found = await session.get(WorkflowRun, run_id)
                if found is None:
                    raise
                run = found
        elif run.status == "failed":
            run.status = "running"
            await session.commit()
    return run


async def _save(ctx: ToolContext, run_id: str, steps: list[dict[str, Any]], status: str) -> None:
    async with ctx.db.session() as session:
        await session.execute(
            update(WorkflowRun)
            .where(WorkflowRun.id == run_id)
            .values(steps=json.dumps(steps, default=str), status=status, updated_at=_now())
        )
        await session.commit()


async def _report(ctx: ToolContext, step: dict[str, Any], detail: str = "") -> None:
    if ctx.progress is not None:
        await ctx.progress(step["key"], step["title"], step["state"], detail)


async def run_workflow(workflow: Workflow, request: BaseModel, ctx: ToolContext) -> ToolResult:
    """Run (or resume) the run whose id is `ctx.idempotency_key`: every step not yet done, in order; the first
    that fails stops the run there, with its reason."""
    run_id = ctx.idempotency_key
    if run_id is None:
        return ToolResult.failure(f"{workflow.title} runs only after an approval.")
    run = await _load_or_create(workflow, request, ctx, run_id)
    if run.status == "done":
        return outcome(workflow, run)
    steps: list[dict[str, Any]] = json.loads(run.steps)
    outputs = {s["key"]: s["output"] for s in steps if s["state"] == "done"}
    for number, (step, state) in enumerate(zip(workflow.steps, steps, strict=True), 1):
        if state["state"] == "done":
            continue
        state.update(state="running", runs=state["runs"] + 1, error=None)
        await _save(ctx, run_id, steps, "running")
        await _report(ctx, state, f"Step {number} of {len(steps)}")
        try:
            args = step.spec.args_model.model_validate(step.arguments(request, outputs))
            produced = await step.spec.func(args, replace(ctx, idempotency_key=f"{run_id}:{step.key}"))
            result = produced if isinstance(produced, ToolResult) else ToolResult(data=produced)
        except Exception as exc:  # a step's bug or outage stops the run at that step, to be retried
            result = ToolResult.failure(f"{type(exc).__name__}: the step could not finish")
        if not result.ok:
            state.update(state="failed", error=result.error)
            await _save(ctx, run_id, steps, "failed")
            await _report(ctx, state, result.error or "")
            break
        state.update(state="done", output=result.data, documents=[d.model_dump() for d in result.documents])
        outputs[step.key] = result.data
        status = "done" if number == len(steps) else "running"
        await _save(ctx, run_id, steps, status)
        await _report(ctx, state, result.summary or "")
    run.steps, run.status = (
        json.dumps(steps, default=str),
        "failed" if any(s["state"] == "failed" for s in steps) else "done",
    )
    return outcome(workflow, run)


def outcome(workflow: Workflow, run: WorkflowRun) -> ToolResult:
    """The run as a tool result: its state for the model, a card of its steps for people."""
    steps: list[dict[str, Any]] = json.loads(run.steps)
    data = describe_run(run)
    card = Presentation(
        title=f"{workflow.title}: {run.subject}",
        items=[
            PresentationItem(
                title=f"{MARKS.get(s['state'], '○')} Step {i} of {len(steps)}: {s['title']}",
                fields=[Detail(label="Problem", value=str(s["error"]))] if s.get("error") else [],
            )
            for i, s in enumerate(steps, 1)
        ],
        footer=f"Run {run.id}",
    )
    documents = [DocumentLink(**d) for s in steps for d in s.get("documents") or []]
    if run.status == "done":
        return ToolResult(
            documents=documents,
            data=data,
            summary=f"{workflow.title} for {run.subject}: all {len(steps)} steps done.",
            presentation=card,
        )
    failed = next((i for i, s in enumerate(steps, 1) if s["state"] == "failed"), None)
    where = f"step {failed} of {len(steps)} ({steps[failed - 1]['title']})" if failed else "a step"
    error = steps[failed - 1].get("error") if failed else None
    return ToolResult(
        ok=False,
        error=f"{workflow.title} for {run.subject} stopped at {where}: {error}. Say 'retry' to resume from it.",
        data=data,
        presentation=card,
    )


def describe_run(run: WorkflowRun) -> dict[str, Any]:
    steps: list[dict[str, Any]] = json.loads(run.steps)
    current = next((i for i, s in enumerate(steps, 1) if s["state"] != "done"), None)
    return {
        "run_id": run.id,
        "workflow": run.workflow,
        "version": run.version,
        "about": run.subject,
        "status": run.status,
        "current_step": current,
        "steps": [
            {"step": i, "title": s["title"], "state": s["state"], **({"error": s["error"]} if s.get("error") else {})}
            for i, s in enumerate(steps, 1)
        ],
        "requested_by": run.requested_by,
        "started_at": run.created_at.isoformat(timespec="seconds"),
    }


def resumable(workflow: Workflow, run: WorkflowRun) -> BaseModel:
    """The stored request of a failed run, if it may be retried now; raises RunRefused saying why not."""
    if run.status == "done":
        raise RunRefused(f"{workflow.title} for {run.subject} is already done.")
    if run.status != "failed":
        raise RunRefused(f"{workflow.title} for {run.subject} is still running; its steps finish on their own.")
    if _now() - run.updated_at > RETRY_WINDOW:
        raise RunRefused(f"{workflow.title} for {run.subject} stopped over a week ago and was abandoned; start anew.")
    if run.schema_hash != workflow.start.schema_hash:
        raise RunRefused(
            f"This run was started with version {run.version} of {workflow.title.lower()}, and propbot now runs "
            f"version {workflow.version}, which takes different details. Nothing was run: please start anew."
        )
    return workflow.request_model.model_validate_json(run.request)
