"""Fixtures for notifications: the fake Twilio REST server and the real twilio client
pointed at it, a tools factory on an injected clock, and a deliverer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.local import LocalCalendar
from app.clock import FixedClock
from app.demo import DemoData
from app.fakes.twilio_rest import FakeTwilio
from app.models import Agent
from app.notifications.delivery import Deliverer, DeliveryConfig
from app.notifications.outbound import TwilioOutbound
from app.tools.service import SchedulingTools, ToolContext

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "fake-rest-token"
PERSON = "+14155550177"
AGENT_LINE = "+15005550007"  # the demo agent's dedicated line: the sending number


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).start()
    fake.state.hang_seconds = 1.0
    yield fake
    fake.stop()


@pytest.fixture
def outbound(fake_twilio: FakeTwilio) -> TwilioOutbound:
    return TwilioOutbound(ACCOUNT_SID, AUTH_TOKEN, base_url=fake_twilio.url, timeout=0.5)


def tools(
    session: Session, demo: DemoData, now: datetime, channel: str = "voice", caller: str = PERSON
) -> SchedulingTools:
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    return SchedulingTools(
        ToolContext(
            session=session,
            agent=agent,
            calendar=LocalCalendar(session),
            now=now,
            caller=caller,
            channel=channel,
        )
    )


class SleepingClock(FixedClock):
    """A fixed clock that a deliverer's sleep moves forward (no real waiting)."""

    def sleep(self, seconds: float) -> None:
        self.advance(seconds=seconds)


def deliverer(
    session_factory: sessionmaker[Session],
    outbound: TwilioOutbound,
    clock: FixedClock,
    **config: object,
) -> Deliverer:
    options: dict[str, object] = {
        "agent_number": "+15005550006",
        "public_base_url": "https://agent.example.com",
        "mps": 0,
        "lease": timedelta(seconds=60),
    }
    options.update(config)
    sleep = clock.sleep if isinstance(clock, SleepingClock) else (lambda _: None)
    return Deliverer(session_factory, outbound, clock, DeliveryConfig(**options), sleep=sleep)  # type: ignore[arg-type]
