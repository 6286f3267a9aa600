"""Status callbacks, replies to reminders and reminder-call keypresses, through signed
webhooks exactly as Twilio sends them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.demo import DemoData
from app.models import Appointment, Attendance, AuditEntry, Conversation, Notification
from app.tools.schemas import BookAppointmentArgs
from tests.conftest import PUBLIC_BASE_URL, Reader, TwilioClient
from tests.notifications import conftest as shared
from tests.notifications.conftest import AGENT_LINE, PERSON, deliverer, tools

# The fake Twilio REST server and the real client pointed at it.
fake_twilio = shared.fake_twilio
outbound = shared.outbound

STATUS = "/webhooks/twilio/notifications/status"
WED_3PM = datetime.fromisoformat("2026-11-25T15:00:00-08:00")
REMINDER_24H = datetime.fromisoformat("2026-11-24T15:00:00-08:00")


def book(factory: sessionmaker[Session], demo: DemoData, clock: FixedClock, channel: str) -> str:
    with factory() as session:
        result = tools(session, demo, clock(), channel).book_appointment(
            BookAppointmentArgs(start=WED_3PM, name="Dana")
        )
        session.commit()
    return str(result.data["appointment"]["id"])


def send_due(factory, outbound, clock) -> None:  # type: ignore[no-untyped-def]
    deliverer(factory, outbound, clock).drain()


def texts(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.text or "" for m in ET.fromstring(response.text).iter("Message")]


def sms(twilio: TwilioClient, body: str, sid: str) -> list[str]:
    params = {"MessageSid": sid, "From": PERSON, "To": AGENT_LINE, "Body": body}
    response = twilio.post("/webhooks/twilio/sms/inbound", params)
    assert response.status_code == 200
    return texts(response)


@pytest.fixture
def reminded(session_factory, demo, clock: FixedClock, outbound, fake_twilio) -> str:  # type: ignore[no-untyped-def]
    """Dana booked by SMS; the 24 h reminder has just gone out."""
    appointment_id = book(session_factory, demo, clock, "sms")
    clock.now = REMINDER_24H
    send_due(session_factory, outbound, clock)
    [message] = fake_twilio.state.messages()
    assert message.get("Body").startswith("Reminder: your consultation")
    return appointment_id


def test_status_callbacks_move_the_status_forward_only(
    twilio: TwilioClient, reminded: str, db: Reader, fake_twilio
):
    sid = fake_twilio.state.messages()[0].sid
    for status in ("sent", "delivered", "sent"):
        response = twilio.post(STATUS, {"MessageSid": sid, "MessageStatus": status})
        assert response.status_code == 200 and response.text.startswith("<?xml")
    row = db.scalar(select(Notification).where(Notification.provider_sid == sid))
    assert row.status == "delivered"


def test_undelivered_callback_keeps_the_error_code(
    twilio: TwilioClient, reminded: str, db, fake_twilio
):
    sid = fake_twilio.state.messages()[0].sid
    twilio.post(STATUS, {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"})
    row = db.scalar(select(Notification).where(Notification.provider_sid == sid))
    assert (row.status, row.reason) == ("undelivered", "twilio error 30003")


def test_unsigned_status_callback_is_refused(client, reminded: str, db, fake_twilio):  # type: ignore[no-untyped-def]
    sid = fake_twilio.state.messages()[0].sid
    response = client.post(STATUS, data={"MessageSid": sid, "MessageStatus": "failed"})
    assert response.status_code == 403
    row = db.scalar(select(Notification).where(Notification.provider_sid == sid))
    assert row.status == "sent"


def test_status_for_an_unknown_sid_is_answered_and_ignored(twilio: TwilioClient, db):
    response = twilio.post(STATUS, {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"})
    assert response.status_code == 200


@pytest.mark.parametrize("reply", ["C", "yes", "See you then!"])
def test_confirming_reply_records_attendance(
    twilio: TwilioClient, reminded: str, db: Reader, reply: str
):
    [answer] = sms(twilio, reply, "SMreply1")
    assert answer == "Thanks, you're confirmed for Wed Nov 25 at 3:00 PM. See you then!"
    attendance = db.get(Attendance, reminded)
    assert (attendance.confirmed_via, attendance.confirmed_at) == ("sms", REMINDER_24H)
    assert db.scalar(
        select(AuditEntry).where(AuditEntry.action == "appointment.attendance_confirmed")
    )
    # A retried webhook answers the same and records nothing new.
    assert sms(twilio, reply, "SMreply1") == [answer]
    assert db.count(Attendance) == 1


def test_reminder_is_in_the_transcript_and_the_conversation_knows_the_appointment(
    twilio: TwilioClient, reminded: str, db: Reader
):
    conversation = db.scalar(select(Conversation).where(Conversation.caller_e164 == PERSON))
    assert conversation.state == {"about_appointment": reminded}


def test_cancel_reply_starts_the_cancel_dialogue_for_that_appointment(
    twilio: TwilioClient, reminded: str, db: Reader
):
    [question] = sms(twilio, "cancel please", "SMcancel1")
    assert "Wed" in question and "?" in question  # asks before acting
    assert db.get(Appointment, reminded).status == "confirmed"
    sms(twilio, "yes", "SMcancel2")
    assert db.get(Appointment, reminded).status == "cancelled"
    assert db.get(Attendance, reminded) is None  # "yes" confirmed the cancellation
    pending = db.scalars(
        select(Notification).where(
            Notification.appointment_id == reminded, Notification.status == "scheduled"
        )
    )
    assert pending == []  # the 2 h reminder was dropped with the cancellation


THU_11AM = datetime.fromisoformat("2026-11-26T11:00:00-08:00")


@pytest.fixture
def reminded_of_one_of_two(session_factory, demo, clock: FixedClock, outbound) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Dana holds Wed 3 PM and Thu 11 AM; the reminder for Wed has just gone out."""
    wednesday = book(session_factory, demo, clock, "sms")
    with session_factory() as session:
        result = tools(session, demo, clock(), "sms").book_appointment(
            BookAppointmentArgs(start=THU_11AM, name="Dana")
        )
        session.commit()
    clock.now = REMINDER_24H
    send_due(session_factory, outbound, clock)
    return wednesday, str(result.data["appointment"]["id"])


def test_cancel_reply_means_the_reminded_appointment_not_another(
    twilio: TwilioClient, reminded_of_one_of_two: tuple[str, str], db: Reader
):
    wednesday, thursday = reminded_of_one_of_two
    [question] = sms(twilio, "I need to cancel", "SMtwo1")
    assert "Wed" in question and "Thu" not in question and "?" in question
    sms(twilio, "yes", "SMtwo2")
    assert db.get(Appointment, wednesday).status == "cancelled"
    assert db.get(Appointment, thursday).status == "confirmed"


def test_move_reply_moves_the_reminded_appointment(
    twilio: TwilioClient, reminded_of_one_of_two: tuple[str, str], db: Reader
):
    wednesday, thursday = reminded_of_one_of_two
    [answer] = sms(twilio, "can I move it to friday at 10am?", "SMtwo3")
    assert "Fri" in answer and "?" in answer and "which" not in answer.lower()
    sms(twilio, "yes", "SMtwo4")
    moved = db.get(Appointment, wednesday)
    assert moved.start_at == datetime.fromisoformat("2026-11-27T10:00:00-08:00")
    assert db.get(Appointment, thursday).start_at == THU_11AM


def test_confirmation_without_a_reminder_goes_to_the_engine(
    twilio: TwilioClient, session_factory, demo, clock, db: Reader
):
    book(session_factory, demo, clock, "sms")
    sms(twilio, "yes", "SMnoreminder")
    assert db.count(Attendance) == 0


def call_key(twilio: TwilioClient, notification_id: str, digits: str, step: str = ""):  # type: ignore[no-untyped-def]
    path = f"/webhooks/twilio/notifications/call/{notification_id}/gather"
    if step:
        path += f"?step={step}"
    params = {"CallSid": "CA" + "7" * 32, "Digits": digits, "From": AGENT_LINE, "To": PERSON}
    response = twilio.post(path, params)
    assert response.status_code == 200
    return " ".join(s.text or "" for s in ET.fromstring(response.text).iter("Say"))


@pytest.fixture
def called(session_factory, demo, clock: FixedClock, outbound, fake_twilio) -> str:  # type: ignore[no-untyped-def]
    from app.models import ReminderSettings

    with session_factory() as session:
        session.add(ReminderSettings(agent_id=demo.agent_id, reminder_calls=True))
        session.commit()
    book(session_factory, demo, clock, "sms")
    clock.now = REMINDER_24H
    send_due(session_factory, outbound, clock)
    [call] = fake_twilio.state.calls()
    assert call.get("To") == PERSON and "Press 1 to confirm" in call.get("Twiml")
    with session_factory() as session:
        row = session.scalar(select(Notification).where(Notification.provider_sid == call.sid))
        assert row is not None and row.status == "sent"
        return row.id


def test_reminder_call_key_1_confirms(twilio: TwilioClient, called: str, db: Reader):
    said = call_key(twilio, called, "1")
    assert "confirmed for Wed Nov 25 at 3:00 PM" in said
    assert db.count(Attendance) == 1
    assert call_key(twilio, called, "1") == said  # a retried callback: same answer


def test_reminder_call_key_2_cancels_only_after_a_second_press(
    twilio: TwilioClient, called: str, db: Reader
):
    notification = db.get(Notification, called)
    assert "press 2 again" in call_key(twilio, called, "2")
    assert db.get(Appointment, notification.appointment_id).status == "confirmed"
    assert "Cancelled" in call_key(twilio, called, "2", step="cancel")
    assert db.get(Appointment, notification.appointment_id).status == "cancelled"
    confirmation = db.scalar(select(Notification).where(Notification.kind == "confirmation"))
    assert confirmation.body.startswith("Cancelled") and confirmation.to_e164 == PERSON


def test_reminder_call_status_callback(twilio: TwilioClient, called: str, db: Reader):
    sid = db.get(Notification, called).provider_sid
    twilio.post(STATUS, {"CallSid": sid, "CallStatus": "no-answer"})
    assert db.get(Notification, called).status == "undelivered"


def test_unsigned_call_key_is_refused(client, called: str, db: Reader):  # type: ignore[no-untyped-def]
    path = f"{PUBLIC_BASE_URL}/webhooks/twilio/notifications/call/{called}/gather"
    assert client.post(path, data={"Digits": "2"}).status_code == 403


# --- key 3: the reminder call goes on as a call to the agent -------------------------

VOICE_GATHER = "/webhooks/twilio/voice/gather"
REMINDER_CALL_SID = "CA" + "7" * 32


def placed_call_turn(twilio: TwilioClient, turn: int, **said: str) -> ET.Element:
    """A Gather result on the reminder call, as Twilio posts it for a call we placed:
    From is our line, To the person, Direction outbound-api."""
    params = {
        "CallSid": REMINDER_CALL_SID,
        "From": AGENT_LINE,
        "To": PERSON,
        "Direction": "outbound-api",
        "CallStatus": "in-progress",
        **said,
    }
    response = twilio.post(f"{VOICE_GATHER}?turn={turn}", params)
    assert response.status_code == 200
    return ET.fromstring(response.text)


def spoken(document: ET.Element) -> str:
    return " ".join(s.text or "" for s in document.iter("Say"))


def press_3(twilio: TwilioClient, notification_id: str) -> ET.Element:
    path = f"/webhooks/twilio/notifications/call/{notification_id}/gather"
    params = {
        "CallSid": REMINDER_CALL_SID,
        "Digits": "3",
        "From": AGENT_LINE,
        "To": PERSON,
        "Direction": "outbound-api",
    }
    response = twilio.post(path, params)
    assert response.status_code == 200
    return ET.fromstring(response.text)


def test_key_3_connects_to_the_agent_about_the_reminded_appointment(
    twilio: TwilioClient, called: str, db: Reader
):
    document = press_3(twilio, called)
    [gather] = document.iter("Gather")
    assert gather.get("action") == f"{PUBLIC_BASE_URL}{VOICE_GATHER}?turn=1"
    assert gather.get("input") == "speech"
    assert "Wed Nov 25 at 3:00 PM" in spoken(document)
    conversation = db.scalar(
        select(Conversation).where(Conversation.external_id == REMINDER_CALL_SID)
    )
    appointment_id = db.get(Notification, called).appointment_id
    assert conversation.channel == "voice" and conversation.caller_e164 == PERSON
    assert conversation.state == {"about_appointment": appointment_id}
    assert conversation.details["voice"]["attested"] is False
    # A retried keypress answers the same and opens nothing new.
    assert ET.tostring(press_3(twilio, called)) == ET.tostring(document)
    voice = db.scalars(select(Conversation).where(Conversation.channel == "voice"))
    assert len(voice) == 1


@pytest.mark.parametrize(
    "said", ["book me friday at 10 am", "what are your opening hours", "cancel it"]
)
def test_after_key_3_each_turn_is_answered_as_on_an_inbound_call(
    twilio: TwilioClient, called: str, db: Reader, said: str
):
    inbound = {"CallSid": "CA" + "8" * 32, "From": PERSON, "To": AGENT_LINE}
    twilio.post("/webhooks/twilio/voice/inbound", {**inbound, "Direction": "inbound"})
    response = twilio.post(
        f"{VOICE_GATHER}?turn=1", {**inbound, "Direction": "inbound", "SpeechResult": said}
    )
    expected = spoken(ET.fromstring(response.text))
    press_3(twilio, called)
    assert spoken(placed_call_turn(twilio, 1, SpeechResult=said)) == expected
    assert db.count(Appointment) == 1  # nothing acted on without a confirmation


def test_after_key_3_an_unattested_person_needs_the_pin_to_cancel(
    twilio: TwilioClient, called: str, db: Reader, session_factory, demo: DemoData
):
    from app.models import Agent
    from app.security.pins import hash_pin

    with session_factory() as session:
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None and agent.caller_id_policy == "strict"
        agent.pin_hash = hash_pin("4321")
        session.commit()
    appointment_id = db.get(Notification, called).appointment_id
    press_3(twilio, called)
    asked = placed_call_turn(twilio, 1, SpeechResult="I need to cancel it")
    assert "PIN" in spoken(asked)
    assert next(asked.iter("Gather")).get("input") == "dtmf speech"
    question = spoken(placed_call_turn(twilio, 2, Digits="4321"))
    assert question.startswith("Thank you, you're verified.")
    assert "Wed" in question and "?" in question  # asks before acting
    assert db.get(Appointment, appointment_id).status == "confirmed"
    placed_call_turn(twilio, 3, SpeechResult="yes")
    assert db.get(Appointment, appointment_id).status == "cancelled"


def test_after_key_3_a_open_agent_lets_the_person_cancel_without_a_pin(
    twilio: TwilioClient, called: str, db: Reader, session_factory, demo: DemoData
):
    from app.models import Agent

    with session_factory() as session:
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None
        agent.caller_id_policy = "open"
        session.commit()
    appointment_id = db.get(Notification, called).appointment_id
    press_3(twilio, called)
    question = spoken(placed_call_turn(twilio, 1, SpeechResult="cancel my appointment"))
    assert "PIN" not in question and "Wed" in question and "?" in question
    placed_call_turn(twilio, 2, SpeechResult="yes")
    assert db.get(Appointment, appointment_id).status == "cancelled"
