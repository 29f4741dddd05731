"""A real SMTP server on 127.0.0.1 (aiosmtpd) for the tests of e-mail: what it accepted, and holds a test can use."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Final

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SMTP_PASSWORD: Final = "smtp-test-password-7d1e"


@dataclass
class Mailbox:
    """The handler of the test server: keeps what it accepts (`received`: a 250 was or is being answered), refuses
    what the test tells it to, and can hold a message before or after taking it, where a test kills its sender."""

    received: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    refuse_rcpt: str | None = None
    refuse_data: str | None = None
    handed: list[Envelope] = field(default_factory=list)  # every DATA that arrived, taken or not
    hold_data: Callable[[Envelope], Awaitable[None]] | None = None
    hold_accepted: Callable[[Envelope], Awaitable[None]] | None = None

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, _: Any) -> str:
        if self.refuse_rcpt is not None:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_data is not None:
            return self.refuse_data
        self.handed.append(envelope)
        if self.hold_data is not None:  # the message is here; the server has not said whether it takes it
            await self.hold_data(envelope)
        self.received.append(envelope)
        if self.hold_accepted is not None:  # taken: the 250 goes out when the hold ends
            await self.hold_accepted(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append(data.login.decode())
        # handled=False: the server itself answers a failure (535), as a real one does.
        return AuthResult(success=data.login == b"propbot" and data.password == SMTP_PASSWORD.encode(), handled=False)

    def parsed(self, n: int = 0) -> EmailMessage:
        message = email.message_from_bytes(self.received[n].original_content or b"", policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class MailServer:
    mailbox: Mailbox
    port: int


async def start_server(
    mailbox: Mailbox, tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None, port: int = 0
) -> Any:
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(
            mailbox,
            hostname="mail.test",
            loop=loop,
            authenticator=mailbox.authenticate,
            tls_context=tls[0] if tls else None,
            require_starttls=tls is not None,
            # Without TLS, only to exercise AUTH on a plain loopback connection.
            auth_require_tls=tls is not None,
        )

    return await loop.create_server(protocol, "127.0.0.1", port)
