"""Two mentions in one channel at the same moment: both turns run at once, and each exchange must land in the
channel's history whole and once, whatever single fault hits the Redis commands of the two turns (the append
that loses the race to the other turn reads again and retries; a second run of a delivery writes nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from bot.errors import StoreUnavailable
from bot.types import Incoming
from tests.faults.flows import MessageFlow, Run, check_message, check_queue_empty, incoming, queue_drained
from tests.faults.nodes import Node


class OverlapFlow(MessageFlow):
    def __init__(self) -> None:
        super().__init__("slack")
        self.name = "overlap in channel"

    async def act(self, run: Run) -> None:
        run.msg = incoming("slack")
        run.also = [
            run.msg.model_copy(update={"text": f"question {uuid.uuid4().hex[:8]}", "event_id": uuid.uuid4().hex})
        ]
        run.acked = False
        acked = await asyncio.gather(*(self._submit(run, m) for m in (run.msg, *run.also)))
        run.acked = all(acked)

    @staticmethod
    async def _submit(run: Run, msg: Incoming) -> bool:
        with contextlib.suppress(StoreUnavailable):
            await run.node.dispatcher.submit(msg)
            return True
        return False

    async def settled(self, run: Run) -> bool:
        return all(run.record.texts_for(m.event_id) for m in self._messages(run)) or not run.acked or run.node.dead

    async def recover(self, run: Run, fresh: Node) -> None:
        for msg in self._messages(run):
            # The platform's retry of an event that got no 200 (one that did is dropped as a duplicate).
            await fresh.dispatcher.submit(msg)
        await queue_drained(run, fresh)

    async def check(self, run: Run) -> None:
        for msg in self._messages(run):
            await check_message(run, msg)
        await check_queue_empty(run)

    @staticmethod
    def _messages(run: Run) -> list[Incoming]:
        return [m for m in (run.msg, *run.also) if m is not None]
