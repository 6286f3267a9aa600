"""One trace per request: the webhook's server span and its SQL statements share a trace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.clock import FixedClock
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.demo import DemoData
from app.main import create_app
from app.telemetry import install_tracing, uninstall_process_wide
from tests.conftest import PUBLIC_BASE_URL, TwilioClient, load_fixture

SMS_PATH = "/webhooks/twilio/sms/inbound"


@pytest.fixture
def traced(
    settings: Settings, clock: FixedClock
) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    # An engine of its own: the instrumentation's listeners stay off the shared one.
    engine = make_engine(settings)
    app = create_app(settings, session_factory=make_session_factory(engine), clock=clock)
    exporter = InMemorySpanExporter()
    install_tracing(app, engine, settings, exporter=exporter)
    try:
        with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
            yield client, exporter
    finally:
        uninstall_process_wide()
        engine.dispose()


def test_an_sms_turn_is_one_trace_from_webhook_to_sql(
    traced, demo: DemoData, settings: Settings
) -> None:
    client, exporter = traced
    params = {k: str(v) for k, v in load_fixture("twilio/inbound-sms.json").items()}
    sid = "SM" + "7" * 32
    params.update(Body="what times do you have tomorrow?", MessageSid=sid, SmsSid=sid)
    params.update(SmsMessageSid=sid, From=demo.caller, To=settings.agent_number)
    assert TwilioClient(client).post(SMS_PATH, params).status_code == 200

    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind is SpanKind.SERVER and SMS_PATH in s.name]
    assert len(server) == 1
    trace_id = server[0].context.trace_id
    # Start-up reads (the vault check) are outside any request; the turn's are inside.
    during = [
        s
        for s in spans
        if s.attributes
        and "db.system" in s.attributes
        and s.start_time >= server[0].start_time
        and s.end_time <= server[0].end_time
    ]
    assert len(during) >= 3, "the turn's SQL statements were not traced"
    assert {s.context.trace_id for s in during} == {trace_id}


def test_without_an_endpoint_nothing_is_instrumented(app) -> None:  # type: ignore[no-untyped-def]
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
