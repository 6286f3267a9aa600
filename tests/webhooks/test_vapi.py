"""VAPI server URL: credentials, assistant-request, every tool-call shape, reports."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.agent.engine import Reply, Turn
from app.calendar.backend import default_calendar_factory
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Agent, Appointment, AuditEntry, Conversation, InboundEvent, Notification
from app.security.pins import hash_pin
from app.security.vapi_auth import sign
from app.webhooks import vapi_payload
from tests.conftest import PUBLIC_BASE_URL, load_fixture

SECRET = "test-vapi-secret"
HMAC_SECRET = "test-vapi-hmac-secret"
UNKNOWN = "+14155550999"
TOOL_NAMES = {
    "check_availability",
    "book_appointment",
    "list_appointments",
    "cancel_appointment",
    "reschedule_appointment",
}


class NoEngine:
    """VAPI runs its own model; our engine must never be asked."""

    def respond(self, turn: Turn) -> Reply:
        raise AssertionError("the conversation engine is not used by VAPI")


class Vapi:
    """Posts server messages the way VAPI does, with the chosen credential."""

    def __init__(self, client: TestClient, clock: FixedClock, session: Session) -> None:
        self.client = client
        self.clock = clock
        self.session = session

    def post(
        self, payload: Any, *, auth: str = "bearer", path: str = "/webhooks/vapi", **kw: Any
    ) -> Any:
        self.session.rollback()  # end the test's read transaction before the server writes
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        if auth == "bearer":
            headers["X-Vapi-Secret"] = SECRET
        elif auth == "authorization":
            headers["Authorization"] = f"Bearer {SECRET}"
        elif auth == "hmac":
            stamp = str(int(kw.pop("timestamp", self.clock().timestamp())))
            headers["x-timestamp"] = stamp
            headers["x-signature"] = sign(kw.pop("secret", HMAC_SECRET), stamp, body)
        return self.client.post(path, content=body, headers=headers)

    def results(self, payload: Any, **kw: Any) -> list[dict[str, str]]:
        response = self.post(payload, **kw)
        assert response.status_code == 200, response.text
        return response.json()["results"]


@pytest.fixture
def vapi_client(
    settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock
) -> Iterator[TestClient]:
    app = create_app(settings, session_factory=session_factory, clock=clock, engine=NoEngine())
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield client


@pytest.fixture
def vapi(vapi_client: TestClient, clock: FixedClock, session: Session, demo: DemoData) -> Vapi:
    return Vapi(vapi_client, clock, session)


def fixture(name: str) -> dict[str, Any]:
    return copy.deepcopy(load_fixture(f"vapi/{name}"))


def tool_message(calls: list[dict[str, Any]], call_id: str = "call_test") -> dict[str, Any]:
    return {
        "message": {
            "type": "tool-calls",
            "call": {"id": call_id, "customer": {"number": "+14155550123"}},
            "toolCallList": calls,
        }
    }


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def set_pin(session: Session, demo: DemoData, pin: str = "4321") -> None:
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    agent.pin_hash = hash_pin(pin)
    session.commit()


def actions(session: Session) -> list[str]:
    session.rollback()
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["bearer", "authorization", "hmac"])
def test_each_credential_plan_is_accepted(vapi: Vapi, auth: str):
    response = vapi.post(fixture("status-update.json"), auth=auth)
    assert response.status_code == 200


def test_missing_credential_is_401_and_audited(vapi: Vapi, session: Session):
    response = vapi.post(fixture("status-update.json"), auth="none")
    assert response.status_code == 401
    assert "webhook.rejected" in actions(session)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Vapi-Secret": "presented-value"}, "wrong VAPI secret"),
        ({"Authorization": "Bearer presented-value"}, "wrong VAPI secret"),
        ({"x-signature": "00" * 32, "x-timestamp": "1795449600"}, "signature mismatch"),
    ],
)
def test_wrong_credential_is_403(vapi: Vapi, session: Session, headers: dict, reason: str):
    headers = {"x-timestamp": str(int(vapi.clock().timestamp())), **headers}
    response = vapi.post(fixture("status-update.json"), auth="none", headers=headers)
    assert response.status_code == 403
    assert response.json()["detail"] in {reason, "stale x-timestamp"}
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "webhook.rejected"))
    assert entry is not None and "presented-value" not in json.dumps(entry.details)


def test_hmac_with_another_secret_is_403(vapi: Vapi):
    response = vapi.post(fixture("status-update.json"), auth="hmac", secret="not-ours")
    assert response.status_code == 403


@pytest.mark.parametrize("age", [301, -301, 86400])
def test_stale_hmac_timestamp_is_403(vapi: Vapi, age: int):
    stamp = vapi.clock().timestamp() - age
    response = vapi.post(fixture("status-update.json"), auth="hmac", timestamp=stamp)
    assert response.status_code == 403
    assert response.json()["detail"] == "stale x-timestamp"


def test_hmac_timestamp_in_milliseconds_is_understood(vapi: Vapi):
    stamp = vapi.clock().timestamp() * 1000
    assert vapi.post(fixture("status-update.json"), auth="hmac", timestamp=stamp).status_code == 200


def test_hmac_covers_the_body(vapi: Vapi):
    stamp = str(int(vapi.clock().timestamp()))
    signature = sign(HMAC_SECRET, stamp, b'{"message": {"type": "status-update"}}')
    response = vapi.post(
        fixture("status-update.json"),
        auth="none",
        headers={"x-timestamp": stamp, "x-signature": signature},
    )
    assert response.status_code == 403


# --- assistant-request ---------------------------------------------------------------------


def test_assistant_request_for_a_known_caller(vapi: Vapi, session: Session, demo: DemoData):
    set_pin(session, demo)
    response = vapi.post(fixture("assistant-request.json"))
    assert response.status_code == 200
    assistant = response.json()["assistant"]
    assert assistant["firstMessage"].startswith("Hi Sam! This is Sam's scheduling line.")
    model = assistant["model"]
    assert model["provider"] == "openai" and model["model"]
    prompt = model["messages"][0]
    assert prompt["role"] == "system"
    assert "America/Los_Angeles" in prompt["content"]
    assert "Monday, November 23, 2026" in prompt["content"]
    assert "consultation (30 minutes)" in prompt["content"]
    assert "Be brief and friendly." in prompt["content"]
    assert "verify_pin" in prompt["content"]
    functions = [tool for tool in model["tools"] if tool["type"] == "function"]
    assert {tool["function"]["name"] for tool in functions} == TOOL_NAMES | {"verify_pin"}
    assert [tool for tool in model["tools"] if tool["type"] != "function"] == [{"type": "endCall"}]
    for tool in functions:
        assert tool["function"]["parameters"]["type"] == "object"
        assert tool["server"]["url"] == f"{PUBLIC_BASE_URL}/webhooks/vapi"
        assert tool["server"]["headers"] == {"X-Vapi-Secret": SECRET}
    assert "endCallFunctionEnabled" not in assistant  # gone from VAPI's Assistant schema
    assert "goodbye" in assistant["endCallPhrases"]
    assert "end-of-call-report" in assistant["serverMessages"]
    assert assistant["server"]["url"] == f"{PUBLIC_BASE_URL}/webhooks/vapi"
    assert assistant["voice"]["voiceId"]
    session.rollback()
    conversation = session.scalar(select(Conversation))
    assert conversation is not None
    assert (conversation.channel, conversation.external_id) == ("vapi", "call_9d2e41")
    assert conversation.agent_id == demo.agent_id


def test_assistant_without_pin_offers_no_verify_tool(vapi: Vapi):
    assistant = vapi.post(fixture("assistant-request.json")).json()["assistant"]
    names = {tool["function"]["name"] for tool in assistant["model"]["tools"] if "function" in tool}
    assert names == TOOL_NAMES


def test_assistant_references_a_stored_credential_when_configured(
    vapi: Vapi, vapi_client: TestClient, settings: Settings
):
    vapi_client.app.state.services.settings = settings.model_copy(
        update={"vapi_credential_id": "cred_123"}
    )
    assistant = vapi.post(fixture("assistant-request.json")).json()["assistant"]
    assert assistant["server"]["credentialId"] == "cred_123"
    assert "headers" not in assistant["server"]
    assert SECRET not in json.dumps(assistant)


def test_assistant_request_for_an_unknown_caller(vapi: Vapi, session: Session):
    payload = fixture("assistant-request.json")
    payload["message"]["customer"]["number"] = UNKNOWN
    payload["message"]["call"]["customer"]["number"] = UNKNOWN
    response = vapi.post(payload)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"error"}
    assert "isn't registered" in body["error"]
    assert "routing.failed" in actions(session)


def test_assistant_request_on_a_dedicated_line_reaches_its_agent(
    vapi: Vapi, demo: DemoData, session: Session
):
    payload = fixture("assistant-request.json")
    payload["message"]["customer"]["number"] = UNKNOWN
    payload["message"]["call"]["customer"]["number"] = UNKNOWN
    payload["message"]["phoneNumber"]["number"] = demo.dedicated_line
    body = vapi.post(payload).json()
    assert body["assistant"]["firstMessage"].startswith("This is Sam's scheduling line.")


# --- tool-calls ----------------------------------------------------------------------------


def test_current_shape_arguments_as_json_string(vapi: Vapi):
    results = vapi.results(fixture("tool-calls.current.json"))
    assert len(results) == 1
    assert results[0]["toolCallId"] == "call_tool_1a"
    assert results[0]["name"] == "check_availability"
    assert results[0]["result"].startswith("Free consultation times: Tue Dec 1, 9:00 AM")
    assert "\n" not in results[0]["result"]


def test_tool_with_tool_call_list_alone(vapi: Vapi):
    payload = fixture("tool-calls.current.json")
    del payload["message"]["toolCallList"]
    results = vapi.results(payload)
    assert [r["toolCallId"] for r in results] == ["call_tool_1a"]
    assert results[0]["result"].startswith("Free consultation times")


def test_object_arguments_book_once_with_the_tool_call_id_as_key(vapi: Vapi, session: Session):
    payload = fixture("tool-calls.object-arguments.json")
    results = vapi.results(payload)
    assert results[0]["toolCallId"] == "toolu_01"
    assert "result" in results[0], results
    session.rollback()
    appointment = session.scalar(select(Appointment))
    assert appointment is not None
    assert appointment.idempotency_key.startswith("request:")  # from toolu_01, agent, caller
    assert appointment.channel == "vapi"
    assert appointment.contact_name == "Dana Reyes"


def test_duplicate_tool_call_id_returns_the_stored_result(vapi: Vapi, session: Session):
    payload = fixture("tool-calls.object-arguments.json")
    first = vapi.results(payload)
    again = vapi.results(payload)
    assert first == again
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Appointment)) == 1
    assert actions(session).count("appointment.booked") == 1


def test_another_caller_reusing_a_tool_call_id_gets_nothing_of_the_first(
    vapi: Vapi, session: Session, demo: DemoData
):
    first = vapi.results(fixture("tool-calls.object-arguments.json"))
    assert "result" in first[0], first
    session.rollback()
    booked = session.scalar(select(Appointment))
    assert booked is not None
    # Caller B (on the dedicated line, so routed to the same agent) sends A's toolCallId.
    other = fixture("tool-calls.object-arguments.json")
    message = other["message"]
    message["call"] = {"id": "call_other", "customer": {"number": UNKNOWN}}
    message["phoneNumber"] = {"number": demo.dedicated_line}
    for item in message["toolCallList"]:
        item["function"]["arguments"]["start"] = "2026-12-01T16:00:00-08:00"
    results = vapi.results(other)
    assert "result" in results[0], results
    assert booked.id not in results[0]["result"] and "3:00 PM" not in results[0]["result"]
    session.rollback()
    rows = session.scalars(select(Appointment).order_by(Appointment.start_at)).all()
    assert [row.contact_e164 for row in rows] == [demo.caller, UNKNOWN]


def test_flat_shape_several_calls_in_order(vapi: Vapi, session: Session, demo: DemoData):
    set_pin(session, demo)
    results = vapi.results(fixture("tool-calls.flat.json"))
    assert [r["toolCallId"] for r in results] == ["tc_flat_1", "tc_flat_2"]
    assert [r["name"] for r in results] == ["list_appointments", "cancel_appointment"]
    # A strict agent: VAPI callers are unattested until verify_pin passes.
    assert "verify your identity" in results[0]["error"]
    assert "verify your identity" in results[1]["error"]


def test_verify_pin_then_list_and_cancel(vapi: Vapi, session: Session, demo: DemoData):
    set_pin(session, demo)
    booked = vapi.results(
        tool_message([call("t1", "book_appointment", start="2026-11-24T15:00:00")])
    )
    assert "result" in booked[0], booked
    wrong = vapi.results(tool_message([call("t2", "verify_pin", pin="1111")]))
    assert "wrong" in wrong[0]["error"]
    right = vapi.results(tool_message([call("t3", "verify_pin", pin="4 3 2 1")]))
    assert right[0]["result"].startswith("PIN verified")
    listed = vapi.results(tool_message([call("t4", "list_appointments")]))
    assert "Your appointments" in listed[0]["result"]
    session.rollback()
    appointment_id = session.scalar(select(Appointment.id))
    cancelled = vapi.results(
        tool_message([call("t5", "cancel_appointment", appointment_id=appointment_id)])
    )
    assert "result" in cancelled[0], cancelled
    assert {"pin.failed", "pin.verified"} <= set(actions(session))
    stored = " ".join(session.scalars(select(InboundEvent.response)).all())
    assert "4321" not in stored and "4 3 2 1" not in stored


def test_vapi_booking_is_confirmed_by_sms_to_the_number_that_called(
    vapi: Vapi, session: Session, demo: DemoData
):
    message = tool_message([call("c1", "book_appointment", start="2026-11-24T15:00:00")])
    assert "result" in vapi.results(message)[0]
    assert "result" in vapi.results(message)[0]  # VAPI retried the tool call
    session.rollback()
    [confirmation] = session.scalars(
        select(Notification).where(Notification.kind == "confirmation")
    ).all()
    assert (confirmation.channel, confirmation.to_e164) == ("sms", "+14155550123")
    assert confirmation.body.startswith("Confirmed: your")
    assert confirmation.status == "scheduled"  # a worker delivers it


def test_a_new_call_keeps_the_name_the_caller_is_known_by(
    vapi: Vapi, session: Session, demo: DemoData
):
    """A tool call opening its call's conversation keeps the caller's name: the owner's
    own, or the newest a caller on the agent's line booked under."""
    vapi.results(tool_message([call("n1", "list_appointments")], call_id="call_owner"))
    assert conversation_of(session, "call_owner").details["caller_name"] == "Sam Rivera"
    dialled = tool_message([], call_id="call_booker")
    dialled["message"]["customer"] = {"number": UNKNOWN}
    dialled["message"]["call"]["customer"] = {"number": UNKNOWN}
    dialled["message"]["phoneNumber"] = {"number": demo.dedicated_line}
    booking = copy.deepcopy(dialled)
    booking["message"]["toolCallList"] = [
        call("n2", "book_appointment", start="2026-11-24T15:00:00")
    ]
    booking["message"]["toolCallList"][0]["function"]["arguments"]["name"] = "Robin Park"
    assert "result" in vapi.results(booking)[0]
    later = copy.deepcopy(dialled)
    later["message"]["call"]["id"] = "call_booker_again"
    later["message"]["toolCallList"] = [call("n3", "list_appointments")]
    vapi.results(later)
    assert conversation_of(session, "call_booker").details["caller_name"] is None
    assert conversation_of(session, "call_booker_again").details["caller_name"] == "Robin Park"


def test_a_booking_opens_its_call_s_conversation_once_and_refers_to_it(
    vapi: Vapi, session: Session, demo: DemoData
):
    """The new call's conversation is written before the booking that refers to it;
    a later call in the same message and the recorded replies update that same row."""
    message = tool_message(
        [
            call("w1", "book_appointment", start="2026-11-24T15:00:00"),
            call("w2", "book_appointment", start="2026-11-24T15:00:00"),
            call("w3", "check_availability", date="2026-11-24"),
        ],
        call_id="call_new",
    )
    results = vapi.results(message)
    assert ["result" in r for r in results] == [True, False, True], results
    conversation = conversation_of(session, "call_new")
    assert session.scalar(select(func.count()).select_from(Conversation)) == 1
    assert (conversation.channel, conversation.agent_id) == ("vapi", demo.agent_id)
    assert conversation.caller_e164 == "+14155550123"
    assert conversation.details["caller_name"] == "Sam Rivera"
    assert conversation.status == "active" and conversation.state == {}
    assert conversation.created_at is not None and conversation.updated_at is not None
    [appointment] = session.scalars(select(Appointment)).all()
    assert appointment.conversation_id == conversation.id
    assert [m.external_id for m in conversation.messages] == ["w1", "w2", "w3"]


def test_a_tool_calls_body_is_decoded_once(vapi: Vapi, monkeypatch: pytest.MonkeyPatch):
    """The credential's dependency decodes the body for the log binding and the handler
    alike: the JSON text is read once a request (tool arguments as an object here)."""
    message = tool_message([call("j1", "check_availability", date="2026-11-24")])
    body = json.dumps(message).encode()
    decoded: list[bytes] = []
    loads = vapi_payload.json.loads

    def counted(text: Any, *args: Any, **kw: Any) -> Any:
        if text == body:
            decoded.append(text)
        return loads(text, *args, **kw)

    monkeypatch.setattr(vapi_payload.json, "loads", counted)
    response = vapi.post(body)
    assert response.status_code == 200 and "result" in response.json()["results"][0]
    assert len(decoded) == 1


def test_an_unreadable_body_is_a_one_line_400(vapi: Vapi):
    response = vapi.post(b'{"message": ')
    assert response.status_code == 400
    assert response.json() == {"error": "the body is not JSON"}


def test_a_new_call_s_conversation_is_written_with_its_booking(vapi: Vapi, session: Session):
    """The booking's INSERT carries its new conversation: one statement on PostgreSQL
    (a data-modifying CTE), the statement just before it on SQLite; never an ORM flush
    of its own elsewhere in the turn."""
    statements: list[str] = []

    def seen(_c, _cur, sql, *_):  # type: ignore[no-untyped-def]
        statements.append(" ".join(sql.split()))

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", seen)
    try:
        message = tool_message([call("f1", "book_appointment", start="2026-11-24T15:00:00")])
        assert "result" in vapi.results(message)[0]
    finally:
        event.remove(bind, "before_cursor_execute", seen)
    writing = [i for i, sql in enumerate(statements) if "INSERT INTO conversations" in sql]
    booking = [i for i, sql in enumerate(statements) if "INSERT INTO appointments" in sql]
    assert len(writing) == 1 and len(booking) == 1, statements
    if bind.dialect.name == "postgresql":
        assert writing == booking
        assert statements[booking[0]].startswith("WITH new_conversation AS (INSERT INTO")
    else:
        assert writing[0] == booking[0] - 1
    [appointment] = session.scalars(select(Appointment)).all()
    assert appointment.conversation_id == conversation_of(session, "call_test").id


def test_a_new_call_s_refused_booking_still_opens_its_conversation(
    vapi: Vapi, session: Session, demo: DemoData
):
    """Refused before its INSERT (outside hours), the booking writes no conversation:
    the call's conversation is written with the turn's last writes, its reply with it."""
    message = tool_message(
        [call("r1", "book_appointment", start="2026-11-24T03:00:00")], call_id="call_refused"
    )
    [result] = vapi.results(message)
    assert "error" in result and "Can't book" in result["error"], result
    conversation = conversation_of(session, "call_refused")
    assert (conversation.agent_id, conversation.status) == (demo.agent_id, "active")
    assert conversation.details["caller_name"] == "Sam Rivera" and conversation.state == {}
    assert conversation.created_at is not None and conversation.updated_at is not None
    assert [m.external_id for m in conversation.messages] == ["r1"]
    assert session.scalar(select(func.count()).select_from(Appointment)) == 0


def test_a_repeat_whose_claim_is_gone_still_books_once(vapi: Vapi, session: Session):
    """The booking's own key answers a repeated toolCallId even when its stored event is
    gone (pruned): the slot it holds is refused, and the key finds the booking."""
    message = tool_message([call("k1", "book_appointment", start="2026-11-24T15:00:00")])
    first = vapi.results(message)[0]["result"]
    session.rollback()
    session.execute(delete(InboundEvent))
    session.commit()
    again = vapi.results(message)[0]
    assert again.get("result") == first, again
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Appointment)) == 1
    assert actions(session).count("appointment.booked") == 1


def test_pin_verification_holds_only_for_its_call(vapi: Vapi, session: Session, demo):
    set_pin(session, demo)
    vapi.results(tool_message([call("p1", "verify_pin", pin="4321")], call_id="call_a"))
    other = vapi.results(tool_message([call("p2", "list_appointments")], call_id="call_b"))
    assert "error" in other[0]


def test_unknown_tool_and_bad_arguments_are_one_line_errors(vapi: Vapi):
    results = vapi.results(
        tool_message(
            [
                call("u1", "teleport"),
                {"id": "u2", "function": {"name": "book_appointment", "arguments": "{not json"}},
                call("u3", "book_appointment", start="someday"),
            ]
        )
    )
    assert [r["toolCallId"] for r in results] == ["u1", "u2", "u3"]
    assert all("error" in r and "\n" not in r["error"] for r in results)
    assert "Unknown tool" in results[0]["error"]


def test_tool_calls_for_an_unknown_caller(vapi: Vapi):
    payload = tool_message([call("x1", "check_availability")])
    payload["message"]["call"]["customer"]["number"] = UNKNOWN
    results = vapi.results(payload)
    assert "isn't registered" in results[0]["error"]


def test_a_failing_tool_is_an_error_result_not_a_5xx(
    settings: Settings, session_factory, clock: FixedClock, session: Session, demo: DemoData
):
    class BrokenCalendar:
        def busy(self, *args: Any) -> list:
            raise RuntimeError("calendar down")

    def factory(session: Session, agent: Agent) -> Any:
        return BrokenCalendar() if agent else default_calendar_factory(session, agent)

    app = create_app(
        settings,
        session_factory=session_factory,
        clock=clock,
        engine=NoEngine(),
        calendar_factory=factory,
    )
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        vapi = Vapi(client, clock, session)
        results = vapi.results(
            tool_message([call("f1", "check_availability"), call("f2", "verify_pin", pin="1")])
        )
    assert results[0]["toolCallId"] == "f1" and "problem" in results[0]["error"]
    assert results[1]["toolCallId"] == "f2" and "error" in results[1]


def test_tool_calls_with_a_garbled_list_still_answer_200(vapi: Vapi):
    payload = {"message": {"type": "tool-calls", "toolCallList": "nonsense"}}
    assert vapi.results(payload) == []


def test_legacy_function_call_message(vapi: Vapi):
    payload = {
        "message": {
            "type": "function-call",
            "call": {"id": "call_fc", "customer": {"number": "+14155550123"}},
            "functionCall": {"name": "check_availability", "parameters": {"date": "2026-12-01"}},
        }
    }
    response = vapi.post(payload)
    assert response.status_code == 200
    assert response.json()["result"].startswith("Free consultation times")


# --- other messages ------------------------------------------------------------------------


def test_unknown_message_type_is_acknowledged(vapi: Vapi):
    payload = {"message": {"type": "speech-update", "status": "started", "role": "user"}}
    response = vapi.post(payload)
    assert response.status_code == 200 and response.json() == {}


def test_body_that_is_not_json_is_400(vapi: Vapi):
    response = vapi.post(b"this is not json")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]


def test_json_without_a_message_is_acknowledged(vapi: Vapi):
    assert vapi.post([1, 2, 3]).status_code == 200
    assert vapi.post({"hello": "world"}).status_code == 200


def conversation_of(session: Session, call_id: str) -> Conversation:
    session.rollback()
    found = session.scalar(select(Conversation).where(Conversation.external_id == call_id))
    assert found is not None
    return found


def test_end_of_call_report_is_stored(vapi: Vapi, session: Session, demo: DemoData):
    vapi.post(fixture("assistant-request.json"))
    assert vapi.post(fixture("end-of-call-report.current.json")).status_code == 200
    conversation = conversation_of(session, "call_9d2e41")
    report = conversation.details["report"]
    assert report["ended_reason"] == "customer-ended-call"
    assert report["summary"] == "Caller booked a consultation on Dec 1 at 3 PM."
    assert report["transcript"].startswith("AI: Hi Dana")
    assert report["recording_url"] == "https://storage.vapi.ai/call_9d2e41-mono.wav"
    assert report["success_evaluation"] is False
    assert report["cost"] == pytest.approx(0.1834)
    assert report["message_count"] == 2
    assert conversation.status == "ended"
    assert conversation.agent_id == demo.agent_id
    # A repeated report changes nothing.
    assert vapi.post(fixture("end-of-call-report.current.json")).status_code == 200
    assert actions(session).count("call.reported") == 1


def test_legacy_end_of_call_report_is_stored(vapi: Vapi, session: Session):
    assert vapi.post(fixture("end-of-call-report.legacy.json")).status_code == 200
    report = conversation_of(session, "call_legacy_01").details["report"]
    assert report["ended_reason"] == "hangup"
    assert report["summary"].startswith("Caller asked for availability")
    assert report["transcript"].startswith("AI: Hello")
    assert report["recording_url"] == "https://storage.vapi.ai/call_legacy_01.wav"
    assert report["message_count"] == 2


def test_status_updates_keep_the_newest(vapi: Vapi, session: Session):
    ended = fixture("status-update.json")
    ended["message"].update(status="ended", timestamp=1763800300000, endedReason="hangup")
    vapi.post(ended)
    vapi.post(fixture("status-update.json"))  # older "in-progress", delivered late
    conversation = conversation_of(session, "call_9d2e41")
    assert conversation.details["call_status"]["status"] == "ended"
    assert conversation.status == "ended"


def test_hang_is_recorded(vapi: Vapi, session: Session):
    payload = {"message": {"type": "hang", "timestamp": 1763800100000, "call": {"id": "call_h"}}}
    assert vapi.post(payload).status_code == 200
    assert conversation_of(session, "call_h").details["hangs"] == [{"at": 1763800100.0}]


def test_past_the_budget_a_booking_is_never_reported_as_failed(
    vapi: Vapi, vapi_client: TestClient, settings: Settings, session: Session
):
    """The work may still commit after the answer: say it is being confirmed."""
    vapi_client.app.state.services.settings = settings.model_copy(
        update={"vapi_budget_seconds": 0.0}
    )
    message = tool_message(
        [
            call("tc-slow-book", "book_appointment", start="2026-11-24T14:00:00-08:00"),
            call("tc-slow-check", "check_availability"),
        ]
    )
    results = vapi.results(message)
    assert results[0]["error"].startswith("Still confirming")
    assert "problem" not in results[0]["error"]
    assert results[1]["error"].startswith("The scheduling system had a problem")


def test_a_booking_puts_no_orm_entity_in_the_session(
    vapi: Vapi, session: Session, session_factory: sessionmaker[Session]
):
    """The claim's read-ahead, the call's new conversation and the booking (built-in
    calendar) are plain rows: no entity is loaded, added or attached in the turn."""
    entities: list[object] = []
    hooks = ("transient_to_pending", "detached_to_persistent", "loaded_as_persistent")

    def seen(_session: Session, instance: object) -> None:
        entities.append(instance)

    for hook in hooks:
        event.listen(session_factory, hook, seen)
    try:
        message = tool_message([call("e1", "book_appointment", start="2026-11-24T15:00:00")])
        assert "result" in vapi.results(message)[0]
    finally:
        for hook in hooks:
            event.remove(session_factory, hook, seen)
    assert entities == []
    assert session.scalar(select(func.count()).select_from(Appointment)) == 1


def test_a_booking_on_a_call_with_a_conversation_refers_to_it(vapi: Vapi, session: Session):
    """A later message of the call reads its conversation with the claim (a plain row):
    the booking refers to it, and no second conversation is written."""
    first = tool_message([call("o1", "check_availability", date="2026-11-24")], call_id="call_on")
    assert "result" in vapi.results(first)[0]
    opened = conversation_of(session, "call_on")
    message = tool_message(
        [call("o2", "book_appointment", start="2026-11-24T15:00:00")], call_id="call_on"
    )
    assert "result" in vapi.results(message)[0]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Conversation)) == 1
    [appointment] = session.scalars(select(Appointment)).all()
    assert appointment.conversation_id == opened.id
    assert [m.external_id for m in conversation_of(session, "call_on").messages] == ["o1", "o2"]
