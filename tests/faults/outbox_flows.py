"""Two flows whose effects leave through the outbox, enumerated at every Redis command and every database write:

- `notice`: a scheduling approved with a maintenance channel configured. After recovery the request exists once,
  and its notice was posted exactly once (the courier's retry finds an earlier attempt's post, as Slack's does).
- `onboarding`: a tenant onboarding approved and run (four steps: validate, tenant record, lease and its PDF, the
  welcome e-mail). After recovery, and the "retry" a person would say when a step stopped on a database error,
  the run is done with one tenant record, one lease, one stored PDF (no orphan), and the welcome e-mail taken
  by the mail server once, or twice with the same Message-ID only when the process died between the server's
  acceptance and the done mark (at least once, as the README says).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from typing import Any

from sqlalchemy import func, select

from bot.types import Approval, ApprovalRequest, DecisionAction
from tests.faults.flows import DecisionFlow, Run, check_card, check_history, incoming, until
from tests.faults.nodes import Node
from tests.support.fake_openai import call, calls, last_message, text, tool_results
from tests.support.scripts import requests_with_key
from tools.documents.db_store import StoredDocument
from tools.onboarding import RetryOnboardingArgs, retry_onboarding
from tools.registry import ToolContext
from tools.tables import Lease, MaintenanceRequest, OutboxRow, Tenant, WorkflowRun

MAINT = "C0MAINT"
OUTBOX = {"outbox_claim": 0.3}  # a dead node's claim runs out quickly
_leases = itertools.count()


async def deliver_everything(run: Run, node: Node) -> None:
    """The courier of a live process, looking until nothing is left to deliver (a dead node's claims run out)."""

    async def nothing_left() -> bool:
        await node.dispatcher.courier.deliver_due()
        async with run.world.db.session() as session:
            query = select(func.count()).where(OutboxRow.status.in_(("pending", "sending")))
            return int((await session.execute(query)).scalar_one()) == 0

    if not await until(nothing_left, within=5.0):
        run.violations.append("effects were left undelivered in the outbox")


class NoticeFlow(DecisionFlow):
    own_database = True
    node_options = {"maintenance_channels": f"*=slack:{MAINT}", **OUTBOX}

    def __init__(self) -> None:
        super().__init__(DecisionAction.APPROVE)
        self.name = "notice"

    async def act(self, run: Run) -> None:
        await super().act(run)
        with contextlib.suppress(Exception):  # as the courier's loop does: the rows wait for the next look
            await run.node.dispatcher.courier.deliver_due()

    async def recover(self, run: Run, fresh: Node) -> None:
        await super().recover(run, fresh)
        await deliver_everything(run, fresh)

    async def check(self, run: Run) -> None:
        await super().check(run)
        assert run.approval is not None
        async with run.world.db.session() as session:
            query = select(MaintenanceRequest.id).where(MaintenanceRequest.idempotency_key == run.approval.id)
            made = list((await session.execute(query)).scalars())
        expected = [f"notice:{rid}:scheduled|slack:{MAINT}" for rid in made]
        # Earlier runs' requests (the database is shared) are told too, when this run's courier finds them.
        ours = sorted(n for n in run.record.noticed if n.split(":")[1] in made)
        if ours != expected:
            run.violations.append(f"notices posted for this run's request: {ours}, expected {expected}")


def onboarding(request: dict[str, Any]) -> dict[str, Any]:
    """The model: asked to onboard, it calls onboard_tenant with the details in the message; reports outcomes."""
    last = last_message(request)
    if last["role"] == "user" and "Onboard" in str(last["content"]):
        start = str(last["content"]).rsplit(" ", 1)[-1]
        details = {
            "tenant_name": "Jane Doe",
            "email": "jane.doe@example.com",
            "phone": None,
            "property_id": "P-1002",
            "start_date": start,
            "months": 1,
            "monthly_rent": 2400,
            "deposit": None,
        }
        return calls(call("onboard_tenant", details))
    if last["role"] == "tool":
        return text("outcome: " + str(tool_results(request)[-1])[:200])
    return text(f"answer to {last['content']}")


class OnboardingFlow(DecisionFlow):
    own_database = True
    node_options = OUTBOX

    def __init__(self) -> None:
        super().__init__(DecisionAction.APPROVE)
        self.name = "onboarding"

    async def setup(self, run: Run) -> None:
        run.world.fake.default = onboarding
        # A month of its own for every run: the runs share one database, and the unit may be leased once a month.
        start = dt.date(2030, 1, 1) + dt.timedelta(days=31 * next(_leases))
        msg = incoming("slack").model_copy(
            update={"user": "slack:T1:UMANAGER2", "text": f"Onboard Jane Doe to P-1002 from {start.replace(day=1)}"}
        )
        replies = await run.node.runtime.agent.handle(msg)
        [request] = [r for r in replies if isinstance(r, ApprovalRequest)]
        await run.node.dispatcher.responders["slack"].deliver(msg, replies)
        run.approval = request.approval

    async def recover(self, run: Run, fresh: Node) -> None:
        await super().recover(run, fresh)
        assert run.approval is not None
        if await _run_status(run, run.approval.id) != "done":
            await _retry(run, fresh, run.approval)  # what a person says when a step stopped: "retry"
        await deliver_everything(run, fresh)

    async def check(self, run: Run) -> None:
        assert run.approval is not None
        key = run.approval.id
        stored = await run.store.get_approval(key)
        assert stored is not None
        await check_card(run, stored)
        await check_history(run, run.approval.conversation.key)
        if (status := await _run_status(run, key)) != "done":
            run.violations.append(f"the run ended {status}, not done, after recovery and a retry")
        async with run.world.db.session() as session:
            tenants = (await session.execute(select(Tenant.id).where(Tenant.idempotency_key == f"{key}:tenant"))).all()
            leases = list(
                (await session.execute(select(Lease).where(Lease.idempotency_key == f"{key}:lease"))).scalars()
            )
            pdfs = [
                (
                    await session.execute(
                        select(func.count()).where(StoredDocument.filename == f"lease-{lease.id}.pdf")
                    )
                ).scalar_one()
                for lease in leases
            ]
        if len(tenants) != 1 or len(leases) != 1:
            run.violations.append(f"{len(tenants)} tenant record(s) and {len(leases)} lease(s) for one run")
        if pdfs != [1] * len(leases):
            run.violations.append(f"stored lease PDFs per lease: {pdfs}")
        sent = [m for m in run.record.mails if m == f"{key}:welcome"]
        if not 1 <= len(sent) <= 2:
            run.violations.append(f"the welcome e-mail was taken {len(sent)} times")
        if requests_made := await requests_with_key(run.world.db, key):
            run.violations.append(f"{requests_made} maintenance request(s) made by an onboarding")


async def _run_status(run: Run, key: str) -> str:
    async with run.world.db.session() as session:
        found = await session.get(WorkflowRun, key, populate_existing=True)
    return found.status if found is not None else "none"


async def _retry(run: Run, node: Node, approval: Approval) -> None:
    ctx = ToolContext(
        db=node.runtime.db,
        user="slack:T1:UMANAGER",
        conversation_key=approval.conversation.key,
        extras=node.runtime.desk.runner.services,
    )
    await retry_onboarding(RetryOnboardingArgs(run_id=approval.id), ctx)


OUTBOX_FLOWS = [NoticeFlow(), OnboardingFlow()]
