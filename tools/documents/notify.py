"""Messages to people outside the chat (a new tenant's welcome package): the `Notifier` protocol and `LogNotifier`.

`smtp.SmtpNotifier` sends e-mail; `LogNotifier` is the default and never sends anything. Every notifier sends one
idempotency key at most once *per instance, while the process lives* (`OncePerKey`): a retried step in the same
process is answered with the first receipt, marked `repeat`. That is not a durable guarantee: after a restart, or
from another process, the same key goes out again. The onboarding workflow will get the durable once-only from its
own stored state (record "sent" with the receipt, skip the step when it is recorded). E-mail's `Message-ID` is
derived from the key, so even a duplicate that slips through is the same message to the recipient's mail system.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Final, Protocol

log = logging.getLogger(__name__)

ADDRESS: Final = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")


@dataclass(frozen=True)
class OutboundMessage:
    """One message to one address. `text` is the plain-text body; `html`, when given, is its HTML alternative.
    `idempotency_key` names the message (e.g. "welcome:L-2025-0042"): the same key is never sent twice."""

    to: str
    subject: str
    text: str
    idempotency_key: str
    html: str | None = None

    def __post_init__(self) -> None:
        # These become mail headers: a CR or LF would let a value add headers (or recipients) of its own.
        if not ADDRESS.fullmatch(self.to):
            raise ValueError(f"{self.to!r} is not a single e-mail address")
        if not 0 < len(self.subject) <= 250 or _has_control(self.subject):
            raise ValueError("the subject must be one line of 1 to 250 characters")
        if not 0 < len(self.idempotency_key) <= 200 or _has_control(self.idempotency_key):
            raise ValueError("the idempotency key must be 1 to 200 characters without control characters")


@dataclass(frozen=True)
class DeliveryReceipt:
    """What a notifier did with a message. `sent` is False when it only recorded it (LogNotifier); `repeat` is True
    when this notifier had already handled the key, so nothing new happened this time."""

    idempotency_key: str
    message_id: str
    sent: bool
    repeat: bool = False


class Notifier(Protocol):
    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """Deliver (or record) `message` once per idempotency key; raises DeliveryError when it cannot."""
        ...


class DeliveryError(Exception):
    """The message was not delivered. `permanent`: trying again unchanged will fail again (a refused address,
    rejected credentials); otherwise it may work later. `code` is the server's reply code, when there was one."""

    permanent: bool = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class DeliveryRefused(DeliveryError):
    permanent = True


class DeliveryUnavailable(DeliveryError):
    permanent = False


class IdempotencyKeyReused(ValueError):
    """A key already used for one message was given with a different one: a bug in whoever makes the keys."""


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A Message-ID that is the same for the same key, from any process."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


class OncePerKey:
    """Runs a delivery at most once per idempotency key; concurrent sends of one key wait for the first.

    A failed delivery records nothing, so it can be retried. The last `remember` keys are kept (a bound, so a
    long-lived process does not grow without end; an onboarding retry comes long before 10,000 others).
    """

    def __init__(self, remember: int = 10_000) -> None:
        self._remember = remember
        self._done: OrderedDict[str, tuple[str, DeliveryReceipt]] = OrderedDict()
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def run(
        self, message: OutboundMessage, deliver: Callable[[OutboundMessage], Awaitable[DeliveryReceipt]]
    ) -> DeliveryReceipt:
        key = message.idempotency_key
        fingerprint = _fingerprint(message)
        async with self._locked(key):
            if (done := self._done.get(key)) is not None:
                if done[0] != fingerprint:
                    raise IdempotencyKeyReused(f"idempotency key {key!r} was already used for a different message")
                self._done.move_to_end(key)
                return replace(done[1], repeat=True)
            receipt = await deliver(message)
            self._done[key] = (fingerprint, receipt)
            while len(self._done) > self._remember:
                self._done.popitem(last=False)
            return receipt

    @asynccontextmanager
    async def _locked(self, key: str) -> AsyncIterator[None]:
        # One lock per key in flight, dropped with its last user, so the table only holds keys being sent.
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]


class LogNotifier:
    """The default notifier: records each message, to `record` when given, else to the log, and never sends it."""

    def __init__(
        self, record: Callable[[OutboundMessage], Awaitable[None]] | None = None, *, domain: str = "propbot.invalid"
    ) -> None:
        self._record = record
        self._domain = domain
        self._once = OncePerKey()

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        return await self._once.run(message, self._deliver)

    async def _deliver(self, message: OutboundMessage) -> DeliveryReceipt:
        receipt = DeliveryReceipt(message.idempotency_key, message_id_for(message.idempotency_key, self._domain), False)
        if self._record is not None:
            await self._record(message)
        else:
            log.info(
                "notification not sent (no notifier configured): key=%s to=%s subject=%r, %d characters",
                message.idempotency_key,
                message.to,
                message.subject,
                len(message.text),
            )
            log.debug("notification %s body:\n%s", message.idempotency_key, message.text)
        return receipt


def _fingerprint(message: OutboundMessage) -> str:
    parts = (message.to, message.subject, message.text, message.html or "")
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)
