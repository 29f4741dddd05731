"""What an operator sees: the audit trail, structured logs with secrets scrubbed, Prometheus metrics and
OpenTelemetry spans."""

from bot.observability.audit import AuditEvent, AuditSink, FanoutAudit, LogAudit

__all__ = ["AuditEvent", "AuditSink", "FanoutAudit", "LogAudit"]
