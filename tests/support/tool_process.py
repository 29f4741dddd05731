"""A process that makes one change with a real tool, as the process running an approved call does, for the tests
that kill it at a boundary of the outbox: `python -m tests.support.tool_process <schedule|onboard> <args JSON> <key>`.

Settings come from the environment (DATABASE_URL, SMTP_*, OUTBOX_CLAIM), the tool's services as `propbot serve`
builds them. It prints "ready" and waits for a line on its standard input, runs the tool under the idempotency key
(an approval's id), prints the outcome as one JSON line, then waits for its standard input to close, so a test can
kill it after the change, before it would exit on its own. It runs no courier: what the change recorded for the
world outside is left to the `propbot worker` processes, or to this tool's own inline delivery (the e-mail)."""

from __future__ import annotations

import asyncio
import json
import sys

from bot.app.services import tool_services
from bot.config import load_settings
from bot.observability.audit import LogAudit
from tools.db import Database
from tools.maintenance import ScheduleMaintenanceArgs, schedule_maintenance
from tools.onboarding import ONBOARDING, OnboardTenantArgs
from tools.registry import ToolContext, ToolResult
from tools.workflows import run_workflow


async def main(mode: str, arguments: str, key: str) -> None:
    settings = load_settings()
    db = Database(settings.database_url)
    await db.start()
    services = tool_services(settings, db, LogAudit())
    ctx = ToolContext(
        db=db, user="slack:T1:UMANAGER", conversation_key="slack:T1:C1", idempotency_key=key, extras=services
    )
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    result: ToolResult
    if mode == "schedule":
        result = await schedule_maintenance(ScheduleMaintenanceArgs.model_validate_json(arguments), ctx)
    else:
        result = await run_workflow(ONBOARDING, OnboardTenantArgs.model_validate_json(arguments), ctx)
    print(json.dumps({"ok": result.ok, "error": result.error, "data": result.data}, default=str), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
