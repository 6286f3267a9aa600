"""Demo data: one user with a verified phone, an agent with hours and appointment types,
and a dedicated line. Idempotent: running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Agent, PhoneNumber, User, utcnow

DEMO_USER_NAME = "Sam Rivera"
DEMO_CALLER = "+14155550123"
DEMO_DEDICATED_LINE = "+15005550007"

WEEKDAY_HOURS = [["09:00", "12:00"], ["13:00", "17:00"]]
DEMO_HOURS = {
    "mon": WEEKDAY_HOURS,
    "tue": WEEKDAY_HOURS,
    "wed": WEEKDAY_HOURS,
    "thu": WEEKDAY_HOURS,
    "fri": WEEKDAY_HOURS,
    "sat": [["10:00", "14:00"]],
}
DEMO_TYPES = [
    {
        "key": "consultation",
        "name": "consultation",
        "duration_minutes": 30,
        "buffer_before_minutes": 0,
        "buffer_after_minutes": 10,
    },
    {
        "key": "haircut",
        "name": "haircut",
        "duration_minutes": 45,
        "buffer_before_minutes": 0,
        "buffer_after_minutes": 15,
    },
]


@dataclass(frozen=True)
class DemoData:
    user_id: str
    agent_id: str
    caller: str
    dedicated_line: str


def load_demo(session: Session) -> DemoData:
    user = session.scalar(select(User).where(User.name == DEMO_USER_NAME))
    if user is None:
        user = User(name=DEMO_USER_NAME, email="sam@example.com")
        session.add(user)
        session.flush()
    agent = session.scalar(select(Agent).where(Agent.user_id == user.id))
    if agent is None:
        agent = Agent(
            user_id=user.id,
            name="Sam's scheduling line",
            timezone="America/Los_Angeles",
            weekly_hours=DEMO_HOURS,
            appointment_types=DEMO_TYPES,
            greeting="This is Sam's scheduling line.",
            instructions="Be brief and friendly.",
        )
        session.add(agent)
        session.flush()
    if session.scalar(select(PhoneNumber).where(PhoneNumber.e164 == DEMO_CALLER)) is None:
        session.add(
            PhoneNumber(e164=DEMO_CALLER, purpose="caller", user_id=user.id, verified_at=utcnow())
        )
    if session.scalar(select(PhoneNumber).where(PhoneNumber.e164 == DEMO_DEDICATED_LINE)) is None:
        session.add(
            PhoneNumber(
                e164=DEMO_DEDICATED_LINE,
                purpose="agent_line",
                user_id=user.id,
                agent_id=agent.id,
                verified_at=utcnow(),
            )
        )
    session.commit()
    return DemoData(user.id, agent.id, DEMO_CALLER, DEMO_DEDICATED_LINE)
