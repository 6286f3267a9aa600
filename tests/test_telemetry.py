"""One trace per request: the webhook's server span and its SQL statements share a trace."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.clock import FixedClock
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.demo import DemoData
from app.fakes.twilio_rest import FakeTwilio
from app.logs import configure_logging
from app.main import create_app
from app.notify import TwilioSender
from app.security.api_keys import Role
from app.telemetry import install_tracing, uninstall_process_wide
from tests.admin.conftest import make_key
from tests.conftest import PUBLIC_BASE_URL, TwilioClient, load_fixture

ACCOUNT_SID = "AC" + "2" * 32

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


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The production logging configuration (LOG_JSON), writing into a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("INFO", as_json=True, stream=stream)
    yield stream
    root.handlers[:], root.level = saved


def test_one_request_connects_app_database_provider_spans_and_its_log_lines(
    settings: Settings,
    clock: FixedClock,
    demo: DemoData,
    json_log: io.StringIO,
) -> None:
    """An admin registering a number: FastAPI, its SQL and the Twilio REST call that texts
    the code are one trace, and the request's log lines carry that trace id."""
    fake = FakeTwilio(ACCOUNT_SID, "rest-token").start()
    engine = make_engine(settings)
    sender = TwilioSender(ACCOUNT_SID, "rest-token", settings.agent_number, fake.url)
    app = create_app(
        settings, session_factory=make_session_factory(engine), clock=clock, sms_sender=sender
    )
    exporter = InMemorySpanExporter()
    install_tracing(app, engine, settings, exporter=exporter)
    try:
        key = make_key(make_session_factory(engine), Role.ADMIN)
        with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
            response = client.post(
                f"/admin/v1/users/{demo.user_id}/phone-numbers",
                json={"number": "+14155550142"},
                headers={"Authorization": f"Bearer {key}"},
            )
    finally:
        uninstall_process_wide()
        engine.dispose()
        fake.stop()
    assert response.status_code == 202, response.text
    assert len(fake.state.messages()) == 1  # the code really went out over HTTP

    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER and "phone-numbers" in s.name]
    trace_id = server.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    assert any(s.attributes and "db.system" in s.attributes for s in in_trace)
    outbound = [
        s
        for s in in_trace
        if s.kind is SpanKind.CLIENT and s.attributes and "db.system" not in s.attributes
    ]
    assert len(outbound) == 1 and "/Messages.json" in str(dict(outbound[0].attributes or {}))

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    [access] = [r for r in lines if r["logger"] == "app.access" and "phone-numbers" in r["message"]]
    assert access["trace_id"] == format(trace_id, "032x")
    assert access["request_id"] == response.headers["x-request-id"]
