"""`SmtpNotifier`: outbound messages as e-mail through an SMTP server, with aiosmtplib (asyncio, no threads).

One connection per message: welcome packages are rare, and a fresh connection has no idle-timeout or
half-closed state to manage. What goes wrong maps onto two errors the workflow can act on: `DeliveryRefused` (5xx,
rejected credentials, an untrusted certificate, no STARTTLS where it is required: fix something first) and
`DeliveryUnavailable` (4xx, cannot connect, timed out, dropped: try again later). A timeout after the message was
handed over can mean it was delivered after all; a retry then sends it again, with the same Message-ID.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime

import aiosmtplib

from tools.documents.notify import (
    ADDRESS,
    DeliveryError,
    DeliveryReceipt,
    DeliveryRefused,
    DeliveryUnavailable,
    OncePerKey,
    OutboundMessage,
    message_id_for,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send. `starttls` upgrades a plain connection (port 587) and refuses a server that cannot;
    `use_tls` speaks TLS from the start (port 465); with neither, mail goes in clear (a relay on this host)."""

    host: str
    sender: str
    port: int = 587
    starttls: bool = True
    use_tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    # For a private CA; None uses the system's trust store.
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not ADDRESS.fullmatch(self.sender):
            raise ValueError(f"the sender {self.sender!r} is not an e-mail address")
        if self.starttls and self.use_tls:
            raise ValueError("use either starttls (port 587) or use_tls (port 465), not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password go together")
        if self.username is not None and not (self.starttls or self.use_tls or _is_loopback(self.host)):
            raise ValueError("SMTP credentials would cross the network in clear: turn on starttls or use_tls")


class SmtpNotifier:
    """A `Notifier` that sends e-mail; one idempotency key is sent at most once per instance (see `notify`)."""

    def __init__(self, settings: SmtpSettings, *, remember: int = 10_000) -> None:
        self.settings = settings
        self._domain = settings.sender.rpartition("@")[2]
        self._once = OncePerKey(remember)

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        return await self._once.run(message, self._deliver)

    def build_email(self, message: OutboundMessage) -> EmailMessage:
        email = EmailMessage(policy=SMTP_POLICY)
        email["From"] = self.settings.sender
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        email["Message-ID"] = message_id_for(message.idempotency_key, self._domain)
        # RFC 3834: marks the mail as automatic, so vacation responders do not answer it.
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.text)
        if message.html is not None:
            email.add_alternative(message.html, subtype="html")
        return email

    async def _deliver(self, message: OutboundMessage) -> DeliveryReceipt:
        settings = self.settings
        email = self.build_email(message)
        message_id = str(email["Message-ID"])
        try:
            await aiosmtplib.send(
                email,
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
                start_tls=settings.starttls,
                use_tls=settings.use_tls,
                tls_context=settings.tls_context,
                timeout=settings.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = _delivery_error(exc, settings)
            log.warning("notification %s not delivered: %s", message.idempotency_key, error)
            raise error from exc
        log.info(
            "notification %s sent as %s via %s:%d", message.idempotency_key, message_id, settings.host, settings.port
        )
        return DeliveryReceipt(message.idempotency_key, message_id, sent=True)


def _delivery_error(exc: BaseException, settings: SmtpSettings) -> DeliveryError:
    """The typed error for what aiosmtplib (or the socket) raised; messages never include the password."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        what = {
            aiosmtplib.SMTPRecipientRefused: "refused the recipient",
            aiosmtplib.SMTPSenderRefused: "refused the sender",
            aiosmtplib.SMTPDataError: "refused the message",
            aiosmtplib.SMTPAuthenticationError: "refused the credentials",
        }.get(type(exc), "answered with an error")
        text = f"SMTP server {where} {what}: {exc.code} {exc.message}"
        kind = DeliveryUnavailable if 400 <= exc.code < 500 else DeliveryRefused
        return kind(text, code=exc.code)
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(exc.__cause__, ssl.SSLCertVerificationError):
        # Waiting will not make the certificate trusted: the host name or tls_context needs fixing.
        return DeliveryRefused(f"SMTP server {where} has a certificate that is not trusted: {exc}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return DeliveryUnavailable(f"SMTP server {where} did not answer within {settings.timeout:g} s")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return DeliveryUnavailable(f"SMTP server {where} cannot be reached: {exc}")
    # Left: what the server does not support (STARTTLS, AUTH): settings to fix, not a moment to wait out.
    return DeliveryRefused(f"SMTP server {where}: {exc}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
