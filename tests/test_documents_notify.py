"""Notifiers: SmtpNotifier against a real SMTP server (aiosmtpd on 127.0.0.1, plain and STARTTLS), LogNotifier,
and the once-per-key rule both share."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_smtp import SMTP_PASSWORD, Mailbox, MailServer, start_server
from tests.support.log_guard import register_secret
from tests.support.tls import tls_pair
from tools.documents.notify import (
    DeliveryRefused,
    DeliveryUnavailable,
    IdempotencyKeyReused,
    LogNotifier,
    OutboundMessage,
)
from tools.documents.smtp import SmtpNotifier, SmtpSettings

PASSWORD = register_secret(SMTP_PASSWORD)
SENDER = "propbot@mail.example.com"


def welcome(key: str = "welcome:L-2025-0042", **changes: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "to": "zoe.nunez@example.com",
        "subject": "Welcome to 1234 Oak St, Zoë",
        "text": "Hello Zoë,\n\nyour lease starts on March 1, 2025. Rent: $1,850 per month.\n",
        "html": "<p>Hello Zoë,</p><p>your lease starts on <b>March 1, 2025</b>.</p>",
        "idempotency_key": key,
    }
    return OutboundMessage(**(values | changes))


@pytest.fixture
async def smtp_server() -> AsyncIterator[MailServer]:
    mailbox = Mailbox()
    server = await start_server(mailbox)
    try:
        yield MailServer(mailbox, server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def plain(server: MailServer, **changes: Any) -> SmtpSettings:
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": server.port, "sender": SENDER, "starttls": False}
    return SmtpSettings(**(settings | changes))


# -- SMTP ------------------------------------------------------------------------------------------


async def test_the_message_arrives_with_its_headers_and_both_bodies(smtp_server: MailServer) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    receipt = await SmtpNotifier(plain(smtp_server)).send(welcome())

    assert receipt.sent and not receipt.repeat
    assert receipt.idempotency_key == "welcome:L-2025-0042"
    [envelope] = smtp_server.mailbox.received
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == ["zoe.nunez@example.com"]
    mail = smtp_server.mailbox.parsed()
    assert mail["From"] == SENDER
    assert mail["To"] == "zoe.nunez@example.com"
    assert mail["Subject"] == "Welcome to 1234 Oak St, Zoë"
    assert mail["Message-ID"] == receipt.message_id
    assert receipt.message_id.endswith("@mail.example.com>")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert before <= mail["Date"].datetime <= dt.datetime.now(dt.UTC)
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    # The wire has CRLF line ends; the text is otherwise what was sent.
    assert text.get_content().replace("\r\n", "\n") == welcome().text
    assert html.get_content().strip() == welcome().html


async def test_a_text_only_message_is_a_single_part(smtp_server: MailServer) -> None:
    await SmtpNotifier(plain(smtp_server)).send(welcome(html=None))
    mail = smtp_server.mailbox.parsed()
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().replace("\r\n", "\n") == welcome().text


async def test_the_same_key_is_sent_once(smtp_server: MailServer) -> None:
    notifier = SmtpNotifier(plain(smtp_server))
    first = await notifier.send(welcome())
    again = await notifier.send(welcome())
    assert again.repeat and again.message_id == first.message_id
    # Concurrent sends of one key wait for the first and send nothing themselves.
    racing = await asyncio.gather(*(notifier.send(welcome("welcome:L-2025-0043")) for _ in range(5)))
    assert [r.repeat for r in racing].count(False) == 1
    assert len(smtp_server.mailbox.received) == 2

    # The guarantee is per notifier (per process): another instance sends again, under the same Message-ID.
    other = await SmtpNotifier(plain(smtp_server)).send(welcome())
    assert not other.repeat and other.message_id == first.message_id
    assert len(smtp_server.mailbox.received) == 3

    with pytest.raises(IdempotencyKeyReused):
        await notifier.send(welcome(subject="Something else"))
    assert len(smtp_server.mailbox.received) == 3


async def test_a_refused_recipient_is_a_permanent_error_and_can_be_retried(smtp_server: MailServer) -> None:
    notifier = SmtpNotifier(plain(smtp_server))
    smtp_server.mailbox.refuse_rcpt = "550 5.1.1 <zoe.nunez@example.com>: mailbox unavailable"
    with pytest.raises(DeliveryRefused) as caught:
        await notifier.send(welcome())
    assert caught.value.code == 550 and caught.value.permanent
    assert f"127.0.0.1:{smtp_server.port} refused the recipient: 550 5.1.1" in str(caught.value)
    assert smtp_server.mailbox.received == []

    # A failure is not remembered: once the address is fixed (here: the server relents) the same key goes out.
    smtp_server.mailbox.refuse_rcpt = None
    assert not (await notifier.send(welcome())).repeat
    assert len(smtp_server.mailbox.received) == 1


async def test_a_temporary_refusal_is_a_temporary_error(smtp_server: MailServer) -> None:
    smtp_server.mailbox.refuse_data = "451 4.3.0 try again later"
    with pytest.raises(DeliveryUnavailable) as caught:
        await SmtpNotifier(plain(smtp_server)).send(welcome())
    assert caught.value.code == 451 and not caught.value.permanent
    assert "refused the message: 451" in str(caught.value)


async def test_no_server_is_a_temporary_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens there now.
    notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, starttls=False, timeout=5))
    with pytest.raises(DeliveryUnavailable, match=f"127.0.0.1:{port} cannot be reached"):
        await notifier.send(welcome())


async def test_a_silent_server_is_a_temporary_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection, never greets
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, starttls=False, timeout=0.5))
        with pytest.raises(DeliveryUnavailable, match=r"did not answer within 0\.5 s"):
            await notifier.send(welcome())
    finally:
        server.close()
        await server.wait_closed()


async def test_required_starttls_never_falls_back_to_clear_text(smtp_server: MailServer) -> None:
    with pytest.raises(DeliveryRefused, match="STARTTLS"):
        await SmtpNotifier(plain(smtp_server, starttls=True)).send(welcome())
    assert smtp_server.mailbox.received == []


async def test_credentials_are_checked_and_never_shown(smtp_server: MailServer) -> None:
    good = plain(smtp_server, username="propbot", password=PASSWORD)
    assert PASSWORD not in repr(good)
    await SmtpNotifier(good).send(welcome())
    assert smtp_server.mailbox.logins == ["propbot"] and len(smtp_server.mailbox.received) == 1

    with pytest.raises(DeliveryRefused) as caught:
        await SmtpNotifier(plain(smtp_server, username="propbot", password=PASSWORD + "x")).send(welcome())
    assert caught.value.code == 535 and "refused the credentials" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert len(smtp_server.mailbox.received) == 1


async def test_starttls_with_login(tmp_path: Path) -> None:
    mailbox = Mailbox()
    server_context, client_context = tls_pair(tmp_path)
    server = await start_server(mailbox, (server_context, client_context))
    try:
        port = server.sockets[0].getsockname()[1]
        settings = SmtpSettings(
            host="127.0.0.1",
            port=port,
            sender=SENDER,
            username="propbot",
            password=PASSWORD,
            tls_context=client_context,
        )
        assert settings.starttls  # the default
        receipt = await SmtpNotifier(settings).send(welcome())
    finally:
        server.close()
        await server.wait_closed()
    assert receipt.sent and mailbox.logins == ["propbot"]
    assert mailbox.parsed()["Message-ID"] == receipt.message_id


async def test_an_untrusted_certificate_is_a_permanent_error(tmp_path: Path) -> None:
    mailbox = Mailbox()
    server = await start_server(mailbox, tls_pair(tmp_path))
    try:
        port = server.sockets[0].getsockname()[1]
        # The system's trust store does not know the test's self-signed certificate.
        notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, timeout=5))
        with pytest.raises(DeliveryRefused, match="certificate that is not trusted"):
            await notifier.send(welcome())
    finally:
        server.close()
        await server.wait_closed()
    assert mailbox.received == []


def test_settings_refuse_what_would_go_wrong_later() -> None:
    with pytest.raises(ValueError, match="in clear"):
        SmtpSettings(host="smtp.example.com", sender=SENDER, starttls=False, username="u", password="p")
    SmtpSettings(host="localhost", sender=SENDER, starttls=False, username="u", password="p")  # a local relay
    with pytest.raises(ValueError, match="not both"):
        SmtpSettings(host="smtp.example.com", sender=SENDER, starttls=True, use_tls=True)
    with pytest.raises(ValueError, match="go together"):
        SmtpSettings(host="smtp.example.com", sender=SENDER, username="u")
    with pytest.raises(ValueError, match="sender"):
        SmtpSettings(host="smtp.example.com", sender="propbot")


def test_a_message_cannot_smuggle_headers_or_recipients() -> None:
    for to in ("a@example.com\r\nBcc: b@example.com", "a@example.com, b@example.com", "A <a@example.com>", "a"):
        with pytest.raises(ValueError, match="single e-mail address"):
            welcome(to=to)
    for subject in ("Hi\r\nBcc: b@example.com", "Hi\nthere", "", "s" * 251):
        with pytest.raises(ValueError, match="subject"):
            welcome(subject=subject)
    for key in ("", "k\n", "k" * 201):
        with pytest.raises(ValueError, match="idempotency key"):
            welcome(key=key)


# -- LogNotifier -----------------------------------------------------------------------------------


async def test_the_log_notifier_records_once_and_sends_nothing() -> None:
    recorded: list[OutboundMessage] = []

    async def record(message: OutboundMessage) -> None:
        recorded.append(message)

    notifier = LogNotifier(record)
    first = await notifier.send(welcome())
    again = await notifier.send(welcome())
    assert recorded == [welcome()]
    assert not first.sent and not first.repeat
    assert again.repeat and again.message_id == first.message_id
    assert (await notifier.send(welcome("welcome:L-2"))).idempotency_key == "welcome:L-2"
    assert len(recorded) == 2


async def test_the_log_notifier_logs_without_a_callback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tools.documents.notify"):
        receipt = await LogNotifier().send(welcome())
    assert not receipt.sent
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "not sent" in line and "welcome:L-2025-0042" in line and "zoe.nunez@example.com" in line
