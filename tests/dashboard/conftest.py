"""Dashboard fixtures: an app with a recording SMS sender, and signing in the way an
owner does (the link texted to their verified number)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.models import Agent, Appointment, PhoneNumber, User, utcnow
from tests.conftest import PINNED_NOW, PUBLIC_BASE_URL

LINK = re.compile(r"https?://\S+/dashboard/auth#t=([\w-]+)")
CODE = re.compile(r"code (\d{6})")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> str | None:
        self.sent.append((to, body))
        return f"SM{len(self.sent):032d}"

    def last_to(self, to: str) -> str:
        return [body for number, body in self.sent if number == to][-1]


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def app(  # type: ignore[no-untyped-def]
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    sender: RecordingSender,
):
    from app.main import create_app

    return create_app(settings, session_factory=session_factory, clock=clock, sms_sender=sender)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=PUBLIC_BASE_URL, follow_redirects=False) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match[1]


def sign_in(client: TestClient, sender: RecordingSender, phone: str) -> None:
    """Ask for a link on the sign-in page, open the texted link, press Continue."""
    page = client.get("/dashboard/sign-in")
    client.post("/dashboard/sign-in", data={"phone": phone, "csrf": csrf_of(page.text)})
    token = LINK.search(sender.last_to(phone))
    assert token, "no sign-in link texted"
    landing = client.get("/dashboard/auth")
    done = client.post("/dashboard/auth", data={"t": token[1], "csrf": csrf_of(landing.text)})
    assert done.status_code == 303, done.text


def page_csrf(client: TestClient, path: str) -> str:
    return csrf_of(client.get(path).text)


@pytest.fixture
def other_owner(session_factory: sessionmaker[Session]) -> tuple[str, str, str]:
    """A second owner with an agent and a verified phone: (user id, agent id, phone)."""
    with session_factory() as session:
        user = User(name="Alex Other")
        session.add(user)
        session.flush()
        agent = Agent(user_id=user.id, name="Alex's line", timezone="America/New_York")
        session.add(agent)
        session.add(
            PhoneNumber(
                e164="+14155550999", purpose="caller", user_id=user.id, verified_at=utcnow()
            )
        )
        session.commit()
        return user.id, agent.id, "+14155550999"


def book(
    session_factory: sessionmaker[Session],
    demo: DemoData,
    hours_from_now: float,
    contact: str = "+14155550150",
    key: str = "k",
) -> str:
    start = PINNED_NOW + timedelta(hours=hours_from_now)
    with session_factory() as session:
        row = Appointment(
            agent_id=demo.agent_id,
            appointment_type="consultation",
            start_at=start,
            end_at=start + timedelta(minutes=30),
            contact_e164=contact,
            contact_name="Jordan",
            idempotency_key=key,
            channel="sms",
            created_at=PINNED_NOW - timedelta(days=1),
        )
        session.add(row)
        session.commit()
        return row.id
