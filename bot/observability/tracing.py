"""OpenTelemetry spans for turns, model calls and tool calls (the optional `otel` extra).

Tracing is on only when OTEL_EXPORTER_OTLP_ENDPOINT is set and the extra is installed; otherwise `span`
costs a context-manager entry and nothing else, so the core never checks. Spans nest through the
OpenTelemetry context, which lives in contextvars: a model or tool call made inside a turn (same task,
or a task started from it) becomes that turn's child, and every span carries the conversation key.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.observability.logs import conversation_var

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None

Attribute = str | int | float | bool


class SpanHandle:
    """What a caller holds inside `span`: attributes known only at the end (tokens, outcome) go here."""

    def __init__(self, span: Span | None = None) -> None:
        self._span = span

    def set(self, **attrs: Attribute | None) -> None:
        if self._span is not None:
            self._span.set_attributes({f"propbot.{k}": v for k, v in attrs.items() if v is not None})


def setup_tracing(endpoint: str | None, exporter: SpanExporter | None = None) -> bool:
    """Start exporting spans in batches over OTLP/HTTP to `endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT); True when
    tracing is on. `exporter` replaces the OTLP exporter (tests use the SDK's in-memory one) and turns tracing on
    without an endpoint."""
    global _provider
    if exporter is None and not endpoint:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: pip install 'propbot[otel]'"
        )
        return False
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The generic endpoint names the collector; OTLP/HTTP puts traces under /v1/traces on it.
        assert endpoint is not None
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    shutdown_tracing()
    service = os.environ.get("OTEL_SERVICE_NAME") or "propbot"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _provider = provider
    log.info("tracing: spans go to %s", endpoint or type(exporter).__name__)
    return True


def shutdown_tracing() -> None:
    """Export what is buffered and stop; tracing is off afterwards."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()


def force_flush() -> None:
    if _provider is not None:
        _provider.force_flush()


@contextlib.contextmanager
def span(name: str, **attrs: Attribute | None) -> Iterator[SpanHandle]:
    """A span named `name`, child of the current one, tagged with the current conversation key."""
    if _provider is None:
        yield SpanHandle()
        return
    tracer = _provider.get_tracer("propbot")
    with tracer.start_as_current_span(name) as current:
        handle = SpanHandle(current)
        conversation = conversation_var.get()
        handle.set(**{"conversation": conversation if conversation != "-" else None, **attrs})
        yield handle


def user_hash(user: str) -> str:
    """A stable pseudonym: traces leave the company's systems, platform user ids should not."""
    return hashlib.sha256(user.encode()).hexdigest()[:16]
