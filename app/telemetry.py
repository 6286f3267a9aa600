"""OpenTelemetry traces: one trace per request across FastAPI, the database and outbound
HTTP (httpx clients, and requests, which twilio's REST client uses). Installed only when
OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise nothing is imported or wrapped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy import Engine

from app.config import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

# Probes and scrapes would drown the traces that matter.
UNTRACED_URLS = "healthz,readyz,metrics"


def install_tracing(
    app: FastAPI,
    db_engine: Engine | None,
    settings: Settings,
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Trace this app; `exporter` replaces OTLP (tests collect spans in memory)."""
    if exporter is None and not settings.otel_exporter_otlp_endpoint:
        return None
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=UNTRACED_URLS)
    if db_engine is not None:
        # Its declared range stops below SQLAlchemy 2.1, whose engine events it uses are
        # unchanged; tests/test_telemetry.py proves the spans still arrive.
        SQLAlchemyInstrumentor().instrument(
            engine=db_engine, tracer_provider=provider, skip_dep_check=True
        )
    # Process-wide: every httpx and requests call made while serving joins the trace.
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    RequestsInstrumentor().instrument(tracer_provider=provider)
    return provider


def uninstall_process_wide() -> None:
    """Undo the process-wide client instrumentation (tests build many apps)."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    RequestsInstrumentor().uninstrument()
    # A singleton too: left instrumented, it would ignore the next app's engine.
    SQLAlchemyInstrumentor().uninstrument()
