"""claim(): each provider event is handled once, even when two deliveries race."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import InboundEvent
from app.security.idempotency import claim
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
