"""One logging configuration: a request's lines carry its request id and the call or
message sid, agent and channel it bound; JSON under LOG_JSON; numbers and secrets out."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.demo import DemoData
from app.logs import bind, configure_logging, fields_scope
from tests.conftest import TwilioClient, load_fixture

INBOUND = "/webhooks/twilio/sms/inbound"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The production configuration (LOG_JSON set), writing into a buffer."""
    # What uvicorn.run(log_level="warning") and alembic's fileConfig leave behind.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").disabled = True
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("INFO", as_json=True, stream=stream)
    yield stream
    root.handlers[:], root.level = saved


def records(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def sms_form(sid: str, sender: str) -> dict[str, str]:
    form = {k: str(v) for k, v in load_fixture("twilio/inbound-sms.json").items()}
    form.update(Body="hi", MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, From=sender)
    return form


def test_a_webhooks_access_line_names_its_message_agent_and_channel(
    json_lines: io.StringIO, twilio: TwilioClient, demo: DemoData
):
    sid = "SM" + "a" * 32
    response = twilio.post(INBOUND, sms_form(sid, demo.caller))
    assert response.status_code == 200
    [access] = [r for r in records(json_lines) if r["logger"] == "app.access"]
    assert access["request_id"] == response.headers["x-request-id"]
    assert access["message_sid"] == sid
    assert access["agent_id"] == demo.agent_id
    assert access["channel"] == "sms"
    assert demo.caller not in json_lines.getvalue()  # never a full number


def test_bound_fields_end_with_the_request(json_lines: io.StringIO, client: TestClient):
    client.get("/healthz")
    [access] = [r for r in records(json_lines) if r["logger"] == "app.access"]
    assert "message_sid" not in access and "agent_id" not in access


def test_uvicorns_loggers_write_through_the_same_handler(json_lines: io.StringIO):
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("uvicorn.access").info('127.0.0.1 "GET /?t=SECRET" 200')
    [line] = records(json_lines)
    assert line["logger"] == "uvicorn.error" and line["message"] == "Started server process"


def test_text_lines_carry_the_bound_fields(capsys: pytest.CaptureFixture[str]):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO", as_json=False)
        with fields_scope():
            bind(call_sid="CA123", agent_id="agt_1", channel="voice", pin="1234")
            logging.getLogger("app.test").info("turn from +14155550123")
        logging.getLogger("app.test").info("after")
    finally:
        root.handlers[:], root.level = saved
    first, after = capsys.readouterr().err.splitlines()
    assert first.endswith("call_sid=CA123 agent_id=agt_1 channel=voice")
    assert "+14155550123" not in first and "pin" not in first  # masked; not a bound field
    assert "call_sid" not in after


def test_fields_bound_outside_a_request_do_not_stick_to_later_lines(
    capsys: pytest.CaptureFixture[str],
):
    # A job thread routes a reminder (binding its agent) and then logs about other work.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO", as_json=False)
        bind(call_sid="CA999", agent_id="agt_job", channel="sms")
        logging.getLogger("app.test").info("next job")
    finally:
        root.handlers[:], root.level = saved
    (line,) = capsys.readouterr().err.splitlines()
    assert "agt_job" not in line and "CA999" not in line
