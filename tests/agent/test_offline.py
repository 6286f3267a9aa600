"""Scripted dialogues with the offline engine, driven the way the webhooks drive it:
route the caller, open the conversation, take one turn, commit; a fresh session per
message. Real tools on the real database, clock pinned to Mon 23 Nov 2026 08:00 PT."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.agent.conversations import ConversationService
from app.agent.engine import Engine, Reply
from app.agent.offline import OfflineEngine
from app.calendar.backend import default_calendar_factory
from app.demo import DemoData
from app.models import Agent, Appointment, BusyBlock, Conversation, Message
from app.routing import Route, route
from tests.conftest import PINNED_NOW

PACIFIC = ZoneInfo("America/Los_Angeles")
STRANGER = "+14155559876"  # not registered: reaches the demo agent on its dedicated line


@dataclass
class Phone:
    """One caller texting or calling the demo agent, one committed turn per message."""

    factory: sessionmaker[Session]
    demo: DemoData
    caller: str
    channel: str = "sms"
    external_id: str = "conv-1"
    engine: OfflineEngine = field(default_factory=OfflineEngine)
    may_manage_existing: bool = True
    replies: list[Reply] = field(default_factory=list)

    def engine_for_turn(self) -> Engine:
        return self.engine

    def say(self, text: str) -> str:
        with self.factory() as session:
            routed = route(session, self.caller, self.demo.dedicated_line)
            assert isinstance(routed, Route)
            service = ConversationService(
                session, self.engine_for_turn(), default_calendar_factory, PINNED_NOW
            )
            conversation = service.open(self.channel, self.external_id, routed)
            reply = service.take_turn(
                conversation,
                routed,
                text,
                channel=self.channel,  # type: ignore[arg-type]
                may_manage_existing=self.may_manage_existing,
            )
            session.commit()
        self.replies.append(reply)
        if self.channel == "sms":
            assert len(reply.text) <= 320, reply.text
        return reply.text

    @property
    def last(self) -> Reply:
        return self.replies[-1]


def appointments(factory: sessionmaker[Session]) -> list[tuple[str, datetime, str, str | None]]:
    """(type, local start, status, name) for every row, in start order."""
    with factory() as session:
        rows = session.scalars(select(Appointment).order_by(Appointment.start_at)).all()
        return [
            (
                a.appointment_type,
                a.start_at.astimezone(PACIFIC).replace(tzinfo=None),
                a.status,
                a.contact_name,
            )
            for a in rows
        ]


def confirmed(factory: sessionmaker[Session]) -> list[tuple[str, datetime]]:
    return [(t, s) for t, s, status, _ in appointments(factory) if status == "confirmed"]


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute)


@pytest.fixture
def owner(session_factory: sessionmaker[Session], demo: DemoData) -> Phone:
    """The demo user texting their own agent: the name is known (Sam Rivera)."""
    return Phone(session_factory, demo, demo.caller)


@pytest.fixture
def stranger(session_factory: sessionmaker[Session], demo: DemoData) -> Phone:
    return Phone(session_factory, demo, STRANGER)


@pytest.fixture
def factory(session_factory: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    yield session_factory


def test_book_with_type_and_time_in_one_message(owner: Phone, factory) -> None:
    reply = owner.say("Hi, can I book a haircut tomorrow at 3pm?")
    assert reply == "Book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm."
    assert confirmed(factory) == []  # nothing booked before the yes
    reply = owner.say("yes")
    assert "Booked" in reply and "Tue Nov 24 at 3:00 PM" in reply
    assert appointments(factory) == [("haircut", local(24, 15), "confirmed", "Sam Rivera")]
    tool_names = [c["name"] for c in owner.last.tool_calls]
    assert tool_names == ["book_appointment"] and owner.last.tool_calls[0]["ok"] is True
    # The transcript keeps both sides and the tool calls.
    with factory() as session:
        messages = session.scalars(select(Message).order_by(Message.id)).all()
        assert [m.direction for m in messages] == ["in", "out", "in", "out"]
        assert messages[-1].tool_calls[0]["name"] == "book_appointment"


def test_asks_type_then_name_then_confirms(stranger: Phone, factory) -> None:
    reply = stranger.say("can I come in tomorrow at 3?")
    assert "consultation" in reply and "haircut" in reply and reply.endswith("?")
    reply = stranger.say("a consultation please")
    assert "Tue Nov 24 at 3:00 PM is free" in reply and "name" in reply
    reply = stranger.say("my name is Dana Reyes")
    assert reply == (
        "Thanks, Dana. Book a consultation on Tue Nov 24 at 3:00 PM? Reply YES to confirm."
    )
    stranger.say("yeah that works")
    assert appointments(factory) == [("consultation", local(24, 15), "confirmed", "Dana Reyes")]


def test_offers_slots_for_a_part_of_day_and_takes_a_choice(owner: Phone, factory) -> None:
    reply = owner.say("any openings on Friday afternoon?")
    assert "consultation or a haircut" in reply
    reply = owner.say("haircut")
    assert reply == "Free haircut times: Fri Nov 27 at 1:00 PM, 2:00 PM or 3:00 PM. Which works?"
    reply = owner.say("the second one")
    assert reply == "Book a haircut on Fri Nov 27 at 2:00 PM? Reply YES to confirm."
    owner.say("yes")
    assert confirmed(factory) == [("haircut", local(27, 14))]


def test_next_tuesday_is_in_next_calendar_week(owner: Phone, factory) -> None:
    reply = owner.say("what consultation times do you have next Tuesday morning?")
    assert "Tue Dec 1 at 9:00 AM, 10:00 AM or 11:00 AM" in reply
    reply = owner.say("10:30")
    assert reply == "Book a consultation on Tue Dec 1 at 10:30 AM? Reply YES to confirm."
    owner.say("ok")
    assert confirmed(factory) == [("consultation", local(1, 10, 30, month=12))]


def test_taken_time_gets_nearby_alternatives(owner: Phone, stranger: Phone, factory) -> None:
    stranger.say("book a haircut tomorrow at 3pm")
    stranger.say("Dana")
    stranger.say("yes")
    reply = owner.say("haircut tomorrow at 3?")
    assert reply.startswith("Sorry, Tue Nov 24 at 3:00 PM is taken.")
    # Haircut 3:00-3:45 plus 15 minutes' buffer: the nearest free times around it.
    assert "2:00 PM" in reply and "4:00 PM" in reply and "3:00 PM," not in reply
    reply = owner.say("4pm")
    assert reply == "Book a haircut on Tue Nov 24 at 4:00 PM? Reply YES to confirm."
    owner.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 15)), ("haircut", local(24, 16))]


def test_outside_hours_says_why(owner: Phone, factory) -> None:
    reply = owner.say("book a consultation on sunday at 10")
    assert "Sun Nov 29 at 10:00 AM is outside opening hours (closed on Sundays)" in reply
    assert "Mon Nov 30" in reply  # the next day with room is offered
    assert confirmed(factory) == []


def test_no_later_and_earlier_move_through_alternatives(owner: Phone, factory) -> None:
    reply = owner.say("consultation tomorrow at 2")
    assert "Tue Nov 24 at 2:00 PM" in reply
    reply = owner.say("no, later")
    assert (
        reply == "Free consultation times: Tue Nov 24 at 2:30 PM, 3:30 PM or 4:30 PM. Which works?"
    )
    reply = owner.say("something earlier")
    assert "Tue Nov 24 at" in reply and "2:00 PM" in reply and "4:30 PM" not in reply
    reply = owner.say("the last one")
    assert reply.startswith("Book a consultation on Tue Nov 24 at")
    owner.say("yes")
    booked = confirmed(factory)
    assert len(booked) == 1 and booked[0][1] < local(24, 14, 30)


def test_change_of_mind_keeps_the_time(owner: Phone, factory) -> None:
    owner.say("book a haircut friday at 10")
    reply = owner.say("actually make it Wednesday")
    assert reply == "Book a haircut on Wed Nov 25 at 10:00 AM? Reply YES to confirm."
    reply = owner.say("hmm, how about 11 instead")
    assert reply == "Book a haircut on Wed Nov 25 at 11:00 AM? Reply YES to confirm."
    owner.say("yes")
    assert confirmed(factory) == [("haircut", local(25, 11))]


def test_list_move_and_cancel(owner: Phone, factory) -> None:
    owner.say("book a consultation on Friday at 10")
    owner.say("yes")
    owner.say("and a haircut on tuesday at 1pm")
    owner.say("yes")
    reply = owner.say("what appointments do I have?")
    assert reply == (
        "You have 2: a haircut on Tue Nov 24 at 1:00 PM; a consultation on Fri Nov 27 at 10:00 AM."
    )
    reply = owner.say("move my Friday appointment to 4pm")
    assert reply == (
        "Move your consultation from Fri Nov 27 at 10:00 AM to Fri Nov 27 at 4:00 PM? "
        "Reply YES to confirm."
    )
    reply = owner.say("yes")
    assert reply == "Done: your consultation is now Fri Nov 27 at 4:00 PM."
    reply = owner.say("cancel my appointment on Tuesday")
    assert reply == "Cancel your haircut on Tue Nov 24 at 1:00 PM? Reply YES to confirm."
    owner.say("yes")
    assert appointments(factory) == [
        ("haircut", local(24, 13), "cancelled", "Sam Rivera"),
        ("consultation", local(27, 16), "confirmed", "Sam Rivera"),
    ]


def test_cancel_it_refers_to_what_was_just_booked(owner: Phone, factory) -> None:
    owner.say("book a haircut on Tuesday at 10")
    owner.say("yes")
    owner.say("consultation wednesday at 9")
    owner.say("yes")
    reply = owner.say("cancel it")
    assert reply == "Cancel your consultation on Wed Nov 25 at 9:00 AM? Reply YES to confirm."
    owner.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 10))]


def test_cancel_with_several_asks_which(owner: Phone, stranger: Phone, factory) -> None:
    owner.say("book a haircut on Tuesday at 10")
    owner.say("yes")
    owner.say("consultation wednesday at 9")
    owner.say("yes")
    # A new conversation (a text days later): nothing in context, two appointments.
    later = Phone(owner.factory, owner.demo, owner.caller, external_id="conv-2")
    reply = later.say("I need to cancel my appointment")
    # The list ends with the question, so the person knows an answer is wanted.
    assert reply.startswith("Which one do you mean: ")
    assert reply.endswith("?")
    assert "1) a haircut on Tue Nov 24 at 10:00 AM" in reply
    assert "2) a consultation on Wed Nov 25 at 9:00 AM" in reply
    reply = later.say("the second one")
    assert reply == "Cancel your consultation on Wed Nov 25 at 9:00 AM? Reply YES to confirm."
    later.say("no")
    assert len(confirmed(factory)) == 2  # "no" cancels nothing
    # The stranger sees none of the owner's appointments.
    assert stranger.say("cancel my appointment") == "You have no upcoming appointments."


def test_reschedule_it_to_a_day_keeps_the_time(owner: Phone, factory) -> None:
    owner.say("haircut tuesday 11am")
    owner.say("yes")
    reply = owner.say("reschedule it to Thursday")
    assert reply == (
        "Move your haircut from Tue Nov 24 at 11:00 AM to Thu Nov 26 at 11:00 AM? "
        "Reply YES to confirm."
    )
    owner.say("yes")
    assert confirmed(factory) == [("haircut", local(26, 11))]


def test_nonsense_and_unknown_type_get_hints(owner: Phone, factory) -> None:
    for text in ("asdf", "purple monkey", "", "!!!", "yes", "no"):
        reply = owner.say(text)
        assert "book, move, list or cancel" in reply, (text, reply)
        assert owner.last.tool_calls == []
    reply = owner.say("book me a massage")
    assert reply == (
        "Sorry, I can't book a massage. I can book a consultation or a haircut. Which one?"
    )
    reply = owner.say("haircut then, monday at 9")
    assert "Mon Nov 30 at 9:00 AM" in reply
    assert confirmed(factory) == []


def test_never_mind_drops_the_request(owner: Phone, factory) -> None:
    owner.say("book a haircut tomorrow at 3pm")
    assert owner.say("never mind") == "OK, I've dropped that. Nothing was booked."
    assert owner.say("yes").startswith("Sorry, I didn't get that.")
    assert confirmed(factory) == []


def test_restart_mid_conversation_continues(session_factory, demo: DemoData) -> None:
    first = Phone(session_factory, demo, STRANGER)
    first.say("book a consultation on thursday afternoon")
    first.say("2")
    # The process restarts: a new engine, a new service, a new session; same conversation.
    second = Phone(session_factory, demo, STRANGER, engine=OfflineEngine())
    reply = second.say("Dana")
    assert reply == (
        "Thanks, Dana. Book a consultation on Thu Nov 26 at 2:00 PM? Reply YES to confirm."
    )
    third = Phone(session_factory, demo, STRANGER, engine=OfflineEngine())
    third.say("yes")
    assert appointments(session_factory) == [("consultation", local(26, 14), "confirmed", "Dana")]
    with session_factory() as session:
        assert session.scalar(select(Conversation.state)) == {
            "version": 2,
            "lang": "en",
            "name": "Dana",
            "last": (session.scalar(select(Appointment.id))),
            "served": True,
        }


def test_voice_wording_and_goodbye(session_factory, demo: DemoData) -> None:
    call = Phone(session_factory, demo, demo.caller, channel="voice", external_id="CA123")
    reply = call.say("I'd like a haircut tomorrow at 3")
    assert reply == "I can book a haircut at 3 PM on Tuesday, November 24th. Shall I go ahead?"
    reply = call.say("yes please")
    assert reply == (
        "You're booked for a haircut at 3 PM on Tuesday, November 24th. "
        "Is there anything else I can help with?"
    )
    assert not call.last.end_conversation
    reply = call.say("what times do you have on Wednesday morning for a consultation")
    assert reply == (
        "I have consultation times at 9 AM, 10 AM or 11 AM on Wednesday, November 25th. "
        "Which would you like?"
    )
    for text in (reply, call.say("never mind")):
        assert ":00" not in text and "apt_" not in text and "Tue " not in text
    reply = call.say("no that's all, thanks")
    assert call.last.end_conversation
    assert "bye" in reply.lower()
    assert confirmed(session_factory) == [("haircut", local(24, 15))]
    with session_factory() as session:
        assert session.scalar(select(Conversation.status)) == "ended"


def test_voice_list_reads_no_ids(session_factory, demo: DemoData) -> None:
    call = Phone(session_factory, demo, demo.caller, channel="voice", external_id="CA9")
    call.say("book a consultation on friday at 10:30")
    call.say("yes")
    reply = call.say("what appointments do I have")
    assert reply == (
        "You have a consultation at 10:30 AM on Friday, November 27th. "
        "Is there anything else I can help with?"
    )


def test_verification_required_keeps_the_request(session_factory, demo: DemoData) -> None:
    owner = Phone(session_factory, demo, demo.caller)
    owner.say("book a haircut on Tuesday at 10")
    owner.say("yes")
    call = Phone(
        session_factory,
        demo,
        demo.caller,
        channel="voice",
        external_id="CA7",
        may_manage_existing=False,
    )
    reply = call.say("cancel my appointment on Tuesday")
    assert "verify" in reply and "PIN" in reply
    assert call.last.state["verification_required"] is True
    assert call.last.tool_calls[0]["ok"] is False
    # The voice layer checked the PIN; the same call resumes the request.
    call.may_manage_existing = True
    reply = call.say("ok")
    assert reply == "Do you want me to cancel your haircut at 10 AM on Tuesday, November 24th?"
    call.say("yes")
    assert confirmed(session_factory) == []


def test_tool_error_is_explained(session_factory, demo: DemoData) -> None:
    owner = Phone(session_factory, demo, demo.caller)
    owner.say("book a haircut on Tuesday at 10")
    # Between the offer and the yes, the owner blocks that morning in the calendar.
    with session_factory() as session:
        session.add(
            BusyBlock(
                agent_id=demo.agent_id,
                start_at=datetime(2026, 11, 24, 17, 0, tzinfo=UTC),
                end_at=datetime(2026, 11, 24, 20, 0, tzinfo=UTC),
            )
        )
        session.commit()
    reply = owner.say("yes")
    assert reply.startswith("Sorry, Tue Nov 24 at 10:00 AM was just taken.")
    assert "1:00 PM" in reply
    assert confirmed(session_factory) == []


ODD_MESSAGES = (
    "asdf",
    "🙂",
    "",
    "a" * 600,
    "at 99",
    "feb 30",
    "32/13",
    "yesterday at 3",
    "the 9th one",
    "1",
    "option 7",
    "move it later",
    "earlier please",
    "cancel",
    "it's Bob",
    "in 90 days",
)
LEAD_INS = (
    ((), None),
    (("book an appointment",), "type"),
    (("consultation on thursday",), "choice"),
    (("haircut thursday at 10",), "name"),
    (("haircut thursday at 10", "Dana"), "confirm"),
    (("haircut thursday at 10", "Dana", "yes", "move it"), "when"),
)


@pytest.mark.parametrize(("lead_in", "awaiting"), LEAD_INS)
def test_odd_messages_in_every_state_get_an_answer(
    session_factory,
    demo: DemoData,
    lead_in: tuple[str, ...],
    awaiting: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for index, odd in enumerate(ODD_MESSAGES):
        with session_factory() as session:
            session.execute(delete(Appointment))
            session.commit()
        phone = Phone(session_factory, demo, STRANGER, external_id=f"odd-{index}")
        for text in lead_in:
            phone.say(text)
        if lead_in:
            assert phone.last.state.get("awaiting") == awaiting
        reply = phone.say(odd)
        assert reply.strip(), odd
    # No rule tripped (the engine's safety net logs when one does).
    assert not [r for r in caplog.records if r.name == "app.agent.offline"]


def test_no_appointments_to_list(owner: Phone) -> None:
    assert owner.say("what appointments do I have?") == "You have no upcoming appointments."
    assert owner.say("when is my appointment") == "You have no upcoming appointments."


def test_move_asks_which_and_keeps_the_new_time(owner: Phone, factory) -> None:
    owner.say("book a haircut on Tuesday at 10")
    owner.say("yes")
    owner.say("consultation wednesday at 9")
    owner.say("yes")
    later = Phone(owner.factory, owner.demo, owner.caller, external_id="conv-2")
    reply = later.say("I need to move my appointment to friday at 9")
    assert reply.startswith("Which one do you mean: 1) a haircut on Tue Nov 24 at 10:00 AM")
    reply = later.say("the haircut")
    assert reply == (
        "Move your haircut from Tue Nov 24 at 10:00 AM to Fri Nov 27 at 9:00 AM? "
        "Reply YES to confirm."
    )
    later.say("yes")
    assert confirmed(factory) == [("consultation", local(25, 9)), ("haircut", local(27, 9))]


def test_a_time_said_against_offers_is_checked_on_that_day(owner: Phone, factory) -> None:
    reply = owner.say("Can I get a haircut this Friday?")
    assert reply == "Free haircut times: Fri Nov 27 at 9:00 AM, 10:00 AM or 11:00 AM. Which works?"
    reply = owner.say("can we do 2 instead")
    assert reply == "Book a haircut on Fri Nov 27 at 2:00 PM? Reply YES to confirm."
    reply = owner.say("no")
    assert reply.startswith("OK. What day and time would suit you better?")
    reply = owner.say("saturday at 4")
    # Closed at 4 on Saturdays (10-2): the day's free times nearest to it instead.
    assert reply.startswith(
        "Sorry, Sat Nov 28 at 4:00 PM is outside opening hours (Saturdays 10 AM-2 PM)."
    )
    # The last 45-minute haircut ends at closing: 1:15 PM, then an hour apart before it.
    assert reply.endswith("Sat Nov 28 at 11:15 AM, 12:15 PM or 1:15 PM. Which works?")
    assert confirmed(factory) == []


def test_single_type_agent_needs_no_type_question(owner: Phone, factory) -> None:
    with factory() as session:
        agent = session.get(Agent, owner.demo.agent_id)
        agent.appointment_types = [agent.appointment_types[1]]  # haircut only
        session.commit()
    reply = owner.say("can I come in tomorrow at 3?")
    assert reply == "Book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm."
    with factory() as session:
        session.get(Agent, owner.demo.agent_id).appointment_types = []
        session.commit()
    other = Phone(owner.factory, owner.demo, owner.caller, external_id="conv-2")
    reply = other.say("can I come in tomorrow at 3?")
    assert reply == "Sorry, no appointment types are set up for booking on this line yet."


def test_a_list_question_about_a_span_of_days_answers_for_the_span(owner: Phone) -> None:
    owner.say("book a haircut on Wednesday at 10")
    owner.say("yes")
    owner.say("and a consultation on Wednesday Dec 2 at 10")
    owner.say("yes")
    other = Phone(owner.factory, owner.demo, owner.caller, external_id="conv-2")
    reply = other.say("when's my thing this week?")
    assert reply == "Yes, you have a haircut on Wed Nov 25 at 10:00 AM."
    reply = other.say("do I have anything next week?")
    assert "Dec 2" in reply and "Nov 25" not in reply


def test_hours_on_a_date_name_the_date(owner: Phone) -> None:
    # Demo hours: Monday to Saturday, closed Sunday; "the 28th" is Saturday Nov 28.
    reply = owner.say("are you guys open on the 28th")
    assert "Sat Nov 28" in reply and "open" in reply, reply
    reply = owner.say("are you open on the 29th?")
    assert "Sun Nov 29" in reply and "closed" in reply, reply
