"""Whether a workspace or tenant streams answers: decided once per process from the platform's own refusal, and
logged once, so later answers go straight to the fallback (posted whole) without asking again."""

from __future__ import annotations

import logging
from collections.abc import Collection

log = logging.getLogger(__name__)


class StreamSupport:
    def __init__(self, platform: str, refusals: Collection[str], enabled: bool = True) -> None:
        self.platform = platform
        self.refusals = frozenset(refusals)  # the error codes that mean "never here", not "not now"
        self.enabled = enabled
        self._off: dict[str, str] = {}

    def on(self, where: str) -> bool:
        return self.enabled and where not in self._off

    def refused(self, where: str, error: str) -> None:
        if error in self.refusals and where not in self._off:
            self._off[where] = error
            log.warning(
                "%s streaming is not available in %s (%s): answers are posted whole", self.platform, where, error
            )
