"""Tenant onboarding as a workflow run: one approval, four steps shown as they go, a valid lease PDF, the welcome
package sent once; a process that dies during step 3 is finished from step 3; a failed step stops the run and
"retry" resumes from it; the model can ask where a run is."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pypdf
from sqlalchemy import func, select

from bot.types import (
    ApprovalRequest,
    ApprovalStatus,
    Decision,
    DecisionAction,
    DecisionOutcome,
    DecisionResult,
    Progress,
)
from tests.support.fake_openai import call, calls, text, tool_results
from tests.support.harness import MANAGER, STAFF, Harness
from tests.support.scripts import JANE
from tools.documents.db_store import DatabaseDocumentStore
from tools.documents.notify import DeliveryReceipt, OutboundMessage
from tools.documents.store import DocumentRef
from tools.tables import Lease, Tenant, WorkflowRun

PERMISSIONS = """\
default_role: viewer
roles:
  viewer: {tools: [search_properties]}
  staff: {tools: [search_properties, get_property, search_tenants, onboard_tenant, onboarding_status]}
  manager: {tools: ["*"], approves: ["*"]}
users:
  "slack:T1:UMANAGER": manager
  "slack:T1:USTAFF": staff
"""


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.sent.append(message)
        return DeliveryReceipt(message.idempotency_key, f"<{len(self.sent)}@test>", True)


class StallingStore(DatabaseDocumentStore):
    """The database store, except that while `stall` is set a put waits forever (the process dies there)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stall = False
        self.reached = asyncio.Event()

    async def put(
        self, filename: str, content_type: str, data: bytes, owner: str, document_id: str | None = None
    ) -> DocumentRef:
        if self.stall:
            self.reached.set()
            await asyncio.sleep(3600)
        return await super().put(filename, content_type, data, owner, document_id)


class Shown:
    """A LiveReply that keeps what the decision showed."""

    def __init__(self) -> None:
        self.steps: list[Progress] = []

    async def progress(self, step: Progress) -> None:
        self.steps.append(step)

    async def text(self, delta: str) -> None:
        pass

    async def finish(self, replies: list[Any]) -> None:
        pass

    async def resume(self) -> bool:
        return False


def services(h: Harness, notifier: RecordingNotifier, store: DatabaseDocumentStore) -> None:
    for process in (h.process, *h.extra):  # the desk's runner is the one the agent's turns use too
        process.desk.runner.services.update(notifier=notifier, documents=store)


async def request_onboarding(h: Harness) -> ApprovalRequest:
    h.fake.push(calls(call("onboard_tenant", JANE)), text("A manager needs to approve Jane's onboarding."))
    replies = await h.say(STAFF, "Onboard Jane Doe to P-1001 from 1 January at $2,400")
    [request] = [r for r in replies if isinstance(r, ApprovalRequest)]
    return request


def decision(approval_id: str) -> Decision:
    return Decision(
        approval_id=approval_id, user=MANAGER, action=DecisionAction.APPROVE, platform="slack", workspace="T1"
    )


async def count(h: Harness, table: Any, key: str) -> int:
    async with h.db.session() as session:
        return int(
            (
                await session.execute(select(func.count()).select_from(table).where(table.idempotency_key == key))
            ).scalar_one()
        )


async def run_state(h: Harness, run_id: str) -> WorkflowRun:
    async with h.db.session() as session:
        run = await session.get(WorkflowRun, run_id)
    assert run is not None
    return run


async def test_one_approval_runs_four_steps_shown_as_they_go(make_harness: Any) -> None:
    h: Harness = await make_harness(permissions=PERMISSIONS)
    notifier, store = RecordingNotifier(), DatabaseDocumentStore(h.db)
    services(h, notifier, store)
    request = await request_onboarding(h)
    approval = request.approval
    # One card, listing exactly what each step will do.
    assert approval.title == "Tenant onboarding: Jane Doe to P-1001"
    assert [d.label for d in approval.summary] == [
        "Step 1 of 4: Validate the tenant's details",
        "Step 2 of 4: Create the tenant record",
        "Step 3 of 4: Generate the lease documents",
        "Step 4 of 4: Send the welcome package",
    ]
    assert "$2,400/month from 2027-01-01 to 2028-01-01, deposit $2,400" in approval.summary[2].value

    shown = Shown()
    h.fake.push(text("Jane is onboarded."))
    result = await h.desk.decide(decision(approval.id), lambda _: shown)
    assert result.outcome is DecisionOutcome.DONE, result.message

    steps = [(p.id.rsplit(":", 1)[1], p.state.value) for p in shown.steps if ":" in p.id]
    assert steps == [(k, s) for k in ("validate", "tenant", "lease", "welcome") for s in ("running", "done")]
    run = await run_state(h, approval.id)
    assert run.status == "done" and [s["runs"] for s in json.loads(run.steps)] == [1, 1, 1, 1]
    assert await count(h, Tenant, f"{approval.id}:tenant") == 1
    async with h.db.session() as session:
        lease = (
            await session.execute(select(Lease).where(Lease.idempotency_key == f"{approval.id}:lease"))
        ).scalar_one()
    assert lease.document_id is not None
    found = await store.get(lease.document_id)
    assert found is not None and found[0].content_type == "application/pdf"
    pdf = pypdf.PdfReader(io.BytesIO(found[1]))
    assert "Jane Doe" in "".join(page.extract_text() for page in pdf.pages)
    assert [m.to for m in notifier.sent] == ["jane.doe@example.com"]  # the notifier, once
    stored = await h.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.DONE


async def test_a_process_killed_during_step_3_is_finished_from_step_3(make_harness: Any) -> None:
    h: Harness = await make_harness(permissions=PERMISSIONS)
    notifier, store = RecordingNotifier(), StallingStore(h.db)
    services(h, notifier, store)
    approval = (await request_onboarding(h)).approval
    store.stall = True
    dying = asyncio.create_task(h.desk.decide(decision(approval.id), None))
    await asyncio.wait_for(store.reached.wait(), 10)
    dying.cancel()  # the process dies inside step 3: its tasks stop where they are, its state stays behind
    with_state = await run_state(h, approval.id)
    assert [s["state"] for s in json.loads(with_state.steps)] == ["done", "done", "running", "pending"]

    store.stall = False
    other = await h.another_process()
    services(h, notifier, store)
    h.fake.push(text("Jane is onboarded."))
    [finished] = await other.desk.recover_stalled(older_than=0)
    assert finished.outcome is DecisionOutcome.DONE, finished.message
    run = await run_state(h, approval.id)
    assert run.status == "done"
    assert [s["runs"] for s in json.loads(run.steps)] == [1, 1, 2, 1]  # steps 1-2 once; step 3 resumed
    assert await count(h, Tenant, f"{approval.id}:tenant") == 1
    assert await count(h, Lease, f"{approval.id}:lease") == 1
    assert len(notifier.sent) == 1


async def failing_run(h: Harness) -> tuple[ApprovalRequest, DecisionResult]:
    """An approved onboarding to P-1004, which is leased (sample data) for the dates asked: step 1 fails, before
    anything is written."""
    h.fake.push(calls(call("onboard_tenant", {**JANE, "property_id": "P-1004", "start_date": "2025-06-01"})))
    h.fake.push(text("Waiting for approval."))
    [request] = [r for r in await h.say(STAFF, "Onboard Jane to P-1004") if isinstance(r, ApprovalRequest)]
    h.fake.default = lambda _: text("It stopped at step 1.")  # the follow-up, whether or not the model is asked
    return request, await h.desk.decide(decision(request.approval.id), None)


async def test_a_failed_step_stops_the_run_and_retry_resumes_from_it(make_harness: Any) -> None:
    h: Harness = await make_harness(permissions=PERMISSIONS)
    notifier, store = RecordingNotifier(), DatabaseDocumentStore(h.db)
    services(h, notifier, store)
    request, result = await failing_run(h)
    assert result.outcome is DecisionOutcome.FAILED
    h.fake.default = None
    run = await run_state(h, request.approval.id)
    states = [s["state"] for s in json.loads(run.steps)]
    assert run.status == "failed" and states == ["failed", "pending", "pending", "pending"]
    assert "already leased" in json.loads(run.steps)[0]["error"]

    # The model answers "where is Jane's onboarding?" from the run's state.
    h.fake.push(calls(call("onboarding_status", {"run_id": None, "tenant_name": "Jane"})), text("Stopped at step 1."))
    await h.say(STAFF, "where is Jane's onboarding?")
    told = tool_results(h.fake.requests[-1])[-1]
    assert told["data"]["status"] == "failed" and told["data"]["current_step"] == 1

    # The lease that blocked it ends early; "retry" resumes the same run, from step 1, and finishes it.
    async with h.db.session() as session, session.begin():
        blocking = (await session.execute(select(Lease).where(Lease.property_id == "P-1004"))).scalar_one()
        blocking.status = "ended"
    h.fake.push(calls(call("retry_onboarding", {"run_id": None})), text("Done now."))
    await h.say(MANAGER, "retry")
    run = await run_state(h, request.approval.id)
    assert run.status == "done" and [s["runs"] for s in json.loads(run.steps)] == [2, 1, 1, 1]
    assert len(notifier.sent) == 1


async def test_a_run_started_under_other_arguments_is_not_resumed_after_a_deploy(make_harness: Any) -> None:
    h: Harness = await make_harness(permissions=PERMISSIONS)
    services(h, RecordingNotifier(), DatabaseDocumentStore(h.db))
    request, result = await failing_run(h)
    assert result.outcome is DecisionOutcome.FAILED
    # As if the run had been started by a propbot whose onboard_tenant took other arguments (version 0).
    async with h.db.session() as session, session.begin():
        run = await session.get(WorkflowRun, request.approval.id)
        assert run is not None
        run.schema_hash, run.version = "0" * 16, 0
    h.fake.default = None
    h.fake.push(calls(call("retry_onboarding", {"run_id": request.approval.id})), text("Cannot resume."))
    await h.say(MANAGER, "retry")
    told = tool_results(h.fake.requests[-1])[-1]
    assert told["ok"] is False and "started with version 0" in told["error"] and "Nothing was run" in told["error"]
    after = await run_state(h, request.approval.id)
    assert [s["runs"] for s in json.loads(after.steps)] == [1, 0, 0, 0]  # nothing ran again


TWO_WORKSPACES = PERMISSIONS + '  "slack:T2:*": manager\n'


async def test_another_workspace_finds_no_run_by_name_or_id_and_cannot_retry_it(make_harness: Any) -> None:
    """A manager of workspace T2 asks for T1's run by the tenant's name, then by its id, then retries it: none
    of it is found (no run id, no requester leaks) and nothing runs."""
    h: Harness = await make_harness(permissions=TWO_WORKSPACES)
    services(h, RecordingNotifier(), DatabaseDocumentStore(h.db))
    request, _ = await failing_run(h)
    h.fake.default = None
    run_id = request.approval.id
    for asked in ({"run_id": None, "tenant_name": "Jane"}, {"run_id": run_id, "tenant_name": None}):
        h.fake.push(calls(call("onboarding_status", asked)), text("Nothing found."))
        await h.say("slack:T2:UOTHER", "where is Jane's onboarding?", channel="C9", workspace="T2")
        told = tool_results(h.fake.requests[-1])[-1]
        assert told["ok"] is False and run_id not in json.dumps(told) and "UMANAGER" not in json.dumps(told)
    h.fake.push(calls(call("retry_onboarding", {"run_id": run_id})), text("Nothing to retry."))
    await h.say("slack:T2:UOTHER", "retry", channel="C9", workspace="T2")
    assert tool_results(h.fake.requests[-1])[-1]["ok"] is False
    assert [s["runs"] for s in json.loads((await run_state(h, run_id)).steps)] == [1, 0, 0, 0]
    # In its own workspace the same question finds it.
    h.fake.push(calls(call("onboarding_status", {"run_id": None, "tenant_name": "Jane"})), text("Stopped."))
    await h.say(STAFF, "where is Jane's onboarding?")
    assert tool_results(h.fake.requests[-1])[-1]["data"]["status"] == "failed"


async def test_retry_is_refused_when_the_approver_may_no_longer_approve(make_harness: Any) -> None:
    """Resuming a run runs its approved call again: checked like the approved path, against today's roles."""
    h: Harness = await make_harness(permissions=PERMISSIONS)
    services(h, RecordingNotifier(), DatabaseDocumentStore(h.db))
    request, _ = await failing_run(h)  # approved by UMANAGER
    h.fake.default = None
    async with h.db.session() as session, session.begin():
        blocking = (await session.execute(select(Lease).where(Lease.property_id == "P-1004"))).scalar_one()
        blocking.status = "ended"  # the run could now finish
    demoted = PERMISSIONS.replace('"slack:T1:UMANAGER": manager', '"slack:T1:UMANAGER": staff') + (
        '  "slack:T1:UMANAGER2": manager\n'
    )
    later = await h.another_process(permissions=demoted)
    h.fake.push(calls(call("retry_onboarding", {"run_id": request.approval.id})), text("Cannot."))
    await later.agent.handle(h.incoming("slack:T1:UMANAGER2", "retry"))
    told = tool_results(h.fake.requests[-1])[-1]
    assert told["ok"] is False and "no longer allowed to approve" in told["error"]
    assert [s["runs"] for s in json.loads((await run_state(h, request.approval.id)).steps)] == [1, 0, 0, 0]
