"""The permissions file read again when it changes, in every process (web and workers), within
PERMISSIONS_RELOAD seconds: the gate's rules are replaced whole, so every later check (an approved call at
execution, a workflow step, a team's button) uses the file as it now is. An edit that does not parse keeps the
rules in force; the log says what is wrong once, and /healthz shows it until the file is fixed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.core.gate import Gate
from bot.core.permissions import load_permissions
from bot.errors import PermissionsError

log = logging.getLogger(__name__)


class PermissionsReloader:
    def __init__(self, path: Path | None, gate: Gate, *, allow_self_approval: bool, interval: float) -> None:
        self.path = path
        self.gate = gate
        self.allow_self_approval = allow_self_approval
        self.interval = interval
        self.problem: str | None = None  # why the file on disk is not in force; None when it is
        self._seen = self._stamp()

    def _stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            found = self.path.stat()
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                await self.check()

    async def check(self) -> bool:
        """Read the file again if it changed since last seen; True when new rules were put in force."""
        stamp = self._stamp()
        if self.path is None or stamp == self._seen:
            return False
        self._seen = stamp
        try:
            rules = await asyncio.to_thread(load_permissions, self.path, allow_self_approval=self.allow_self_approval)
        except PermissionsError as exc:
            if str(exc) != self.problem:
                log.error("permissions file changed but not applied, the previous rules stay in force: %s", exc)
            self.problem = str(exc)
            return False
        self.gate.permissions = rules
        self.problem = None
        spec = rules.spec
        log.info(
            "permissions file %s applied: %d roles, %d user and %d group entries",
            self.path,
            len(spec.roles),
            len(spec.users),
            len(spec.groups),
        )
        return True
