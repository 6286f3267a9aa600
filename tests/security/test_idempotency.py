"""claim(): each provider event is handled once, even when two deliveries race."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import InboundEvent
from app.security.idempotency import claim, respond
from tests.conftest import Reader


def test_second_claim_gets_the_stored_response(session: Session):
    first = claim(session, "twilio", "SM1", "sms")
    assert first.is_new
    assert first.event is not None
    first.event.response = "<Response/>"
    session.commit()
    again = claim(session, "twilio", "SM1", "sms")
    assert not again.is_new and again.previous_response == "<Response/>"
    assert claim(session, "vapi", "SM1", "tool-call").is_new  # ids are per provider


def test_racing_deliveries_run_once(session_factory: sessionmaker[Session], db: Reader):
    barrier = threading.Barrier(8, timeout=30)

    def deliver(_: int) -> bool:
        barrier.wait()
        with session_factory() as session:
            result = claim(session, "twilio", "SMrace", "sms")
            if result.event is not None:
                result.event.response = "done"
            session.commit()
            return result.is_new

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(deliver, range(8)))
    assert outcomes.count(True) == 1
    (event,) = db.scalars(select(InboundEvent))
    assert event.response == "done"


def test_a_claim_makes_its_entity_only_when_asked_and_stores_the_response_either_way(
    session: Session, db: Reader
):
    by_id = claim(session, "twilio", "SMbyid", "sms")
    assert by_id.is_new and by_id.event_if_made() is None
    assert not [o for o in session if isinstance(o, InboundEvent)]  # nothing in the session
    respond(session, by_id, "<Response>one</Response>")

    asked = claim(session, "twilio", "SMasked", "sms")
    entity = asked.event
    assert entity is not None and entity in session and asked.event is entity
    assert entity.id == asked.event_id and entity.external_id == "SMasked"
    respond(session, asked, "<Response>two</Response>")
    assert entity.response == "<Response>two</Response>"
    session.commit()

    stored = {e.external_id: e.response for e in db.scalars(select(InboundEvent))}
    assert stored == {"SMbyid": "<Response>one</Response>", "SMasked": "<Response>two</Response>"}
    assert claim(session, "twilio", "SMbyid", "sms").previous_response == (
        "<Response>one</Response>"
    )
