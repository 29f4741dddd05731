"""The one deliverer of the outbox (tools/outbox.py), running in every propbot process: what a change recorded for
the world outside (a maintenance notice, a welcome e-mail) goes out from here, whichever process made the change
and whichever is alive when it is due. Nothing else posts an effect: a change wakes the courier (`kick`), and a
process that died mid-delivery leaves its row to the next courier that looks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Final

from bot.core.port import Responder
from bot.core.surfaces import Surfaces
from bot.core.team_channels import TeamChannels
from bot.errors import Undeliverable
from bot.types import Platform, TeamNotice
from tools.outbox import TEAM_NOTICE, TEAM_POST, Deliver, Effect, Outbox

log = logging.getLogger(__name__)

LOOK_EVERY: Final = 2.0  # seconds between looks for rows another process left due


class Courier:
    def __init__(
        self,
        outbox: Outbox,
        responders: Mapping[Platform, Responder],
        surfaces: Surfaces,
        team_channels: TeamChannels,
        deliverers: Mapping[str, Deliver],
    ) -> None:
        self.outbox = outbox
        self.responders = responders  # the dispatcher's, filled in as adapters register
        self.surfaces = surfaces
        self.team_channels = team_channels
        self.deliverers = {**deliverers, TEAM_NOTICE: self._fan_out, TEAM_POST: self._post}
        self._wake = asyncio.Event()
        self._fanned = False

    def kick(self) -> None:
        """Something was recorded: look now rather than at the next interval."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, every: float = LOOK_EVERY) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception:  # the database is away: look again later, the rows wait
                log.warning("outbox: could not look for due effects", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), every)

    async def deliver_due(self) -> int:
        """Attempt every row due now; how many were due. A notice's posts are due the moment it is fanned out, so
        a second pass delivers them in the same call."""
        made = 0
        for _ in range(3):
            self._fanned = False
            due = await self.outbox.due()
            for effect_id in due:
                await self.outbox.deliver(effect_id, self._deliver)
            made += len(due)
            if not self._fanned:
                break
        return made

    async def _deliver(self, effect: Effect) -> str | None:
        deliverer = self.deliverers.get(effect.kind)
        if deliverer is None:
            # Another version of propbot may know it: leave it for a process that does.
            raise LookupError(f"no deliverer for {effect.kind!r} in this process")
        return await deliverer(effect)

    async def _fan_out(self, effect: Effect) -> str | None:
        notice = TeamNotice.model_validate(effect.payload)
        posts = [
            (
                f"{effect.id}|{platform}:{channel}",
                TEAM_POST,
                {"platform": platform, "channel": channel, "notice": notice.model_dump(mode="json")},
            )
            for platform, channel in self.team_channels.targets(notice)
        ]
        await self.outbox.fan_out(effect, posts)
        self._fanned = True
        return None

    async def _post(self, effect: Effect) -> str | None:
        platform: Platform = effect.payload["platform"]
        channel = str(effect.payload["channel"])
        notice = TeamNotice.model_validate(effect.payload["notice"])
        responder = self.responders.get(platform)
        if responder is None:
            raise Undeliverable(f"{platform} is not served by this propbot")
        # An earlier attempt may have posted before its process stopped: the responder looks for it first.
        posted = await responder.notify(channel, notice, effect.id, effect.attempts > 1)
        await self.surfaces.noticed(platform, channel, notice.request_id)
        return posted
