"""What tools may use besides the database (ToolContext.extras): the notifier that sends a new tenant's welcome
package and the store that keeps lease documents, built from the settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.observability.audit import AuditEvent, AuditSink
from tools.db import Database
from tools.documents.db_store import DatabaseDocumentStore
from tools.documents.notify import LogNotifier, Notifier, OutboundMessage
from tools.documents.smtp import SmtpNotifier, SmtpSettings
from tools.documents.store import DocumentStore, FolderDocumentStore
from tools.outbox import Outbox

log = logging.getLogger(__name__)


def notifier(settings: Settings, audit: AuditSink) -> Notifier:
    """SMTP when SMTP_HOST is set; otherwise each message is written to the audit trail and the log, not sent."""
    if settings.smtp_host:
        return SmtpNotifier(
            SmtpSettings(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_sender,
                starttls=settings.smtp_security == "starttls",
                use_tls=settings.smtp_security == "tls",
                username=settings.smtp_username,
                password=settings.smtp_password,
            )
        )

    async def record(message: OutboundMessage) -> None:
        log.info("notification not sent (SMTP_HOST is unset): to=%s subject=%r", message.to, message.subject)
        await audit.record(
            AuditEvent(
                kind="notification",
                user="propbot",
                conversation="",
                tool="notifier",
                arguments={"to": message.to, "subject": message.subject, "key": message.idempotency_key},
                outcome="recorded",
                duration=0.0,
            )
        )

    return LogNotifier(record)


def documents(settings: Settings, db: Database) -> DocumentStore:
    """DOCUMENTS_DIR when set (one file per document), else the database."""
    if settings.documents_dir:
        return FolderDocumentStore(Path(settings.documents_dir))
    return DatabaseDocumentStore(db)


def tool_services(settings: Settings, db: Database, audit: AuditSink) -> dict[str, Any]:
    return {
        "notifier": notifier(settings, audit),
        "documents": documents(settings, db),
        "outbox": Outbox(db, claim=settings.outbox_claim),
    }
