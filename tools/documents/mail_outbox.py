"""The welcome e-mail (any `OutboundMessage`) as an outbox effect: recorded, then sent by whichever process holds
its row. At least once: a process that stops after the mail server took the message and before the row is marked
done leaves it to be sent again; every attempt carries the same Message-ID (derived from the idempotency key), so
the recipient's mail system sees one message."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from tools.documents.notify import Notifier, OutboundMessage
from tools.outbox import Deliver, Effect


def email_payload(message: OutboundMessage) -> dict[str, Any]:
    return asdict(message)


def email_deliverer(notifier: Notifier) -> Deliver:
    async def deliver(effect: Effect) -> str | None:
        receipt = await notifier.send(OutboundMessage(**effect.payload))
        return json.dumps({"message_id": receipt.message_id, "sent": receipt.sent})

    return deliver
