"""A small circuit breaker: after repeated failures, fail fast for a cool-down, then let one probe decide."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    def __init__(self, retry_in: float) -> None:
        super().__init__(f"circuit open; retry in {retry_in:.0f}s")
        self.retry_in = retry_in


class CircuitBreaker:
    """Per process. A shared breaker would need a Redis round trip on every model call; a process that
    sees the outage itself reacts just as fast, and each one probes on its own."""

    def __init__(
        self, failure_threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self.clock() - self._opened_at >= self.cooldown:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def before_call(self) -> None:
        """Raise CircuitOpen unless this call may go ahead (closed, or the single half-open probe)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return
        assert self._opened_at is not None
        if state is CircuitState.OPEN or self._probe_in_flight:
            raise CircuitOpen(max(0.0, self.cooldown - (self.clock() - self._opened_at)))
        self._probe_in_flight = True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_abandoned(self) -> None:
        """A call ended without a verdict (cancelled). A probe's slot is freed, or the circuit would stay
        half-open with a probe nobody runs, refusing every call for good."""
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probe_in_flight or self._failures >= self.failure_threshold:
            self._opened_at = self.clock()
        self._probe_in_flight = False
