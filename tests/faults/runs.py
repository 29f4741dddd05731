"""One run of a fault-enumeration flow (tests/faults/flows.py): a node faulted at a Redis command or a database
write while the flow acts, then a fresh node recovers and the flow's invariants are checked."""

from __future__ import annotations

import asyncio
import time

from bot.store.factory import open_store
from tests.faults.db_faults import DbFault, DbFaults
from tests.faults.flows import OUTAGE, Flow, Run, World, answer, until
from tests.faults.nodes import Node, Record
from tests.faults.proxy import Fault
from tools.db import Database


# -- one run -------------------------------------------------------------------------------------------------
async def run_once(
    world: World, flow: Flow, fault: Fault | None, db_fault: DbFault | None = None, count_writes: bool = False
) -> tuple[Run, int]:
    """Run `flow` with `fault` at a Redis command, or `db_fault` at a database write (neither: a dry run that
    counts the flow's commands, or with `count_writes` its database writes); (the run, boundaries counted)."""
    world.fake.default = answer
    world.fake.violations.clear()
    record_holder = Record()
    node_db = Database(world.db.url) if flow.own_database else world.db
    writes = DbFaults(node_db) if flow.own_database else None
    node = await Node(world.proxy.url, world.fake, node_db, record_holder, **flow.node_options).start(
        worker=flow.worker_at_start
    )
    run = Run(world, node, record=record_holder)
    fresh: Node | None = None
    try:
        await flow.setup(run)
        run.direct = open_store(world.direct_url, history_ttl=3600)
        if fault is not None:
            fault.down_for = fault.down_for or OUTAGE
            fault.stall = 1.5
            fault.on_kill = node.kill
        world.proxy.arm(fault)
        if writes is not None:

            def killed() -> None:
                # The process is gone: its Redis connections with it, and every database statement it would still
                # send is refused (DbFaults.dead). Its tasks are not cancelled here: a cancelled task could not
                # finish the rollback that stands in for the operating system closing a dead process's files.
                world.proxy.cut(OUTAGE)
                node.dead = True

            writes.on_kill = killed
            writes.arm(db_fault)
        acting = node.spawn(flow.act(run))
        await asyncio.wait([acting], timeout=8.0)
        await until(lambda: flow.settled(run), within=3.0)
        await asyncio.sleep(0.2)
        counted = writes.count if writes is not None and count_writes else world.proxy.count
        if writes is not None:
            writes.disarm()
        down = (fault is not None and world.proxy.fired.is_set()) or (writes is not None and writes.dead)
        if down:
            await asyncio.sleep(max(0.0, world.proxy._down_until - time.monotonic()) + 0.1)
        world.proxy.arm(None)
        fresh = await Node(world.direct_url, world.fake, world.db, run.record, **flow.node_options).start()
        await flow.recover(run, fresh)
        await flow.check(run)
        return run, counted
    finally:
        for each in (node, fresh):
            if each is not None:
                await each.close()
        if node_db is not world.db:
            await node_db.close()
        await _close_direct(run)


async def _close_direct(run: Run) -> None:
    if run.direct is not None:
        await run.direct.store.close()
