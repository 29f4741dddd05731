"""A process that runs (or resumes) one tenant onboarding on a database, for the tests that race real processes:
`python -m tests.support.onboard_process <database url> <run id> <request JSON>`.

It opens the database, prints "ready" and waits for a line on its standard input (so processes started one after
the other act at the same moment), runs the workflow as an approved call would (the run id is the
approval's id; a run that stopped at a failed step is resumed from it), and prints the outcome as one JSON line:
{"ok": ..., "error": ..., "status": ...}."""

from __future__ import annotations

import asyncio
import json
import sys

from tools.db import Database
from tools.onboarding import ONBOARDING, OnboardTenantArgs
from tools.registry import ToolContext
from tools.workflows import run_workflow


async def main(url: str, run_id: str, request: str) -> None:
    db = Database(url)
    await db.start()
    try:
        args = OnboardTenantArgs.model_validate_json(request)
        ctx = ToolContext(db=db, user="slack:T1:UMANAGER", conversation_key="slack:T1:C1", idempotency_key=run_id)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        result = await run_workflow(ONBOARDING, args, ctx)
        print(json.dumps({"ok": result.ok, "error": result.error, "status": (result.data or {}).get("status")}))
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
