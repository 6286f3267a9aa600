"""The Google backend against canned HTTP answers (googleapiclient's HttpMockSequence):
the exact requests sent and how each kind of answer is treated."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from googleapiclient.http import HttpMockSequence
from sqlalchemy.orm import Session

from app.calendar.backend import CalendarError
from app.calendar.google import GoogleCalendar, GoogleCalendarFactory, event_id_for
from app.demo import DemoData
from app.models import Agent, Appointment

TOKEN = ({"status": "200"}, json.dumps({"access_token": "ya29.x", "expires_in": 3600}))
START = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
END = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)


def _error(status: int, reason: str) -> tuple[dict[str, str], str]:
    body = {"error": {"code": status, "message": reason, "errors": [{"reason": reason}]}}
    return {"status": str(status)}, json.dumps(body)


def backend(
    factory: GoogleCalendarFactory, session: Session, demo: DemoData, answers: list
) -> tuple[GoogleCalendar, Agent, HttpMockSequence]:
    http = HttpMockSequence([TOKEN, *answers])
    factory.http_factory = lambda timeout: http
    agent = session.get(Agent, demo.agent_id)
    calendar = factory(session, agent)
    assert isinstance(calendar, GoogleCalendar)
    return calendar, agent, http


def _appointment(agent: Agent, key: str = "idem-1") -> Appointment:
    return Appointment(
        id="apt_unit",
        agent_id=agent.id,
        appointment_type="consultation",
        start_at=START,
        end_at=START.replace(hour=18, minute=30),
        contact_e164="+14155550123",
        contact_name="Ana",
        idempotency_key=key,
        channel="voice",
    )


def test_event_ids_are_deterministic_base32hex():
    first = event_id_for("agt_1", "call-9:tool-2")
    assert first == event_id_for("agt_1", "call-9:tool-2")
    assert first != event_id_for("agt_2", "call-9:tool-2")
    assert set(first) <= set("abcdefghijklmnopqrstuv0123456789") and 5 <= len(first) <= 1024


def test_freebusy_request_and_busy_times(session, demo, factory, connected):
    answer = {
        "calendars": {
            "primary": {"busy": [{"start": "2026-11-24T19:00:00Z", "end": "2026-11-24T20:00:00Z"}]}
        }
    }
    calendar, agent, http = backend(
        factory, session, demo, [({"status": "200"}, json.dumps(answer))]
    )
    busy = calendar.busy(agent, START, END)
    assert [(b.start.hour, b.end.hour) for b in busy] == [(19, 20)]
    uri, method, body, headers = http.request_sequence[1]
    assert method == "POST" and "/calendar/v3/freeBusy?" in uri
    assert json.loads(body) == {
        "timeMin": "2026-11-24T18:00:00Z",
        "timeMax": "2026-11-24T22:00:00Z",
        "items": [{"id": "primary"}],
    }
    assert headers["authorization"] == "Bearer ya29.x"


def test_per_calendar_error_inside_a_200_is_a_calendar_error(session, demo, factory, connected):
    answer = {"calendars": {"primary": {"errors": [{"reason": "rateLimitExceeded"}], "busy": []}}}
    calendar, agent, _ = backend(factory, session, demo, [({"status": "200"}, json.dumps(answer))])
    with pytest.raises(CalendarError, match="rateLimitExceeded"):
        calendar.busy(agent, START, END)


def test_insert_sends_deterministic_id_and_send_updates(session, demo, factory, connected):
    calendar, agent, http = backend(factory, session, demo, [({"status": "200"}, "{}")])
    appointment = _appointment(agent)
    assert calendar.create_event(agent, appointment) == event_id_for(agent.id, "idem-1")
    uri, method, body, _ = http.request_sequence[1]
    assert method == "POST" and "sendUpdates=none" in uri
    sent = json.loads(body)
    assert sent["id"] == event_id_for(agent.id, "idem-1")
    assert sent["start"] == {"dateTime": "2026-11-24T18:00:00Z", "timeZone": agent.timezone}
    assert "+14155550123" in sent["description"]


def test_conflict_then_matching_event_is_success(session, demo, factory, connected):
    appointment_body = {
        "status": "confirmed",
        "start": {"dateTime": "2026-11-24T18:00:00Z"},
        "end": {"dateTime": "2026-11-24T18:30:00Z"},
    }
    calendar, agent, http = backend(
        factory,
        session,
        demo,
        [_error(409, "duplicate"), ({"status": "200"}, json.dumps(appointment_body))],
    )
    calendar.create_event(agent, _appointment(agent))
    assert [m for _, m, _, _ in http.request_sequence[1:]] == ["POST", "GET"]


def test_forbidden_without_rate_limit_reason_is_not_retried(
    session, demo, factory, connected, sleeps
):
    calendar, agent, _ = backend(factory, session, demo, [_error(403, "forbiddenForNonOrganizer")])
    with pytest.raises(CalendarError, match="refused"):
        calendar.create_event(agent, _appointment(agent))
    assert sleeps == []


def test_delete_treats_gone_as_done(session, demo, factory, connected):
    calendar, agent, _ = backend(factory, session, demo, [_error(410, "deleted")])
    calendar.delete_event(agent, _appointment(agent))


def test_5xx_until_retries_run_out_is_a_calendar_error(session, demo, factory, connected, sleeps):
    calendar, agent, _ = backend(factory, session, demo, [_error(500, "backendError")] * 5)
    # Nothing recent to stand in: the agent says it cannot check the calendar.
    with pytest.raises(CalendarError, match="can't check the calendar"):
        calendar.busy(agent, START, END)
    assert len(sleeps) == 4
