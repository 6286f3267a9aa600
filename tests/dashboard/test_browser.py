"""The dashboard in a real Chromium (Debian's package) through Playwright, against the
app served by uvicorn: sign in by texted link, change hours and see them offered over
SMS, cancel from the agenda, a live SMS turn, connecting a calendar against a fake
Google, another owner refused; axe-core on every page at phone and desktop widths."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.oauth import redirect_uri
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Agent, Appointment, CalendarConnection, Conversation
from app.security.vault import generate_key
from tests.calendar.fake_google import FakeGoogle
from tests.conftest import Reader, load_fixture, twilio_signature
from tests.dashboard.browser import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    axe_violations,
    reserve_port,
    screenshot,
    serve,
)
from tests.dashboard.conftest import LINK, RecordingSender, book

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"Chromium not installed at {CHROMIUM} (.ci/run installs it)",
)
PAGES = ("agenda", "conversations", "settings", "calendar", "numbers", "insights")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    google = FakeGoogle().start()
    yield google
    google.stop()


class ConsentScreen(BaseHTTPRequestHandler):
    """Google's consent screen with the owner clicking Allow: a code bound to the PKCE
    challenge (issued by the fake Google's token endpoint), back to our callback."""

    google: FakeGoogle

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        code, _ = self.google.issue_code(query["code_challenge"][0])
        back = f"{query['redirect_uri'][0]}?{urlencode({'state': query['state'][0], 'code': code})}"
        self.send_response(302)
        self.send_header("Location", back)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def consent_url(fake: FakeGoogle) -> Iterator[str]:
    handler = type("Consent", (ConsentScreen,), {"google": fake})
    for _ in range(5):
        try:
            server = ThreadingHTTPServer(("127.0.0.1", reserve_port()), handler)
            break
        except OSError:
            continue
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/o/oauth2/auth"
    server.shutdown()
    server.server_close()


class Live:
    """The served app, its base URL, and what it texted."""

    def __init__(self, url: str, sender: RecordingSender, settings: Settings) -> None:
        self.url = url
        self.sender = sender
        self.settings = settings

    def sms(self, sender: str, to: str, body: str, sid: str) -> str:
        """An inbound SMS signed the way Twilio signs it, against the served app."""
        form = {k: str(v) for k, v in load_fixture("twilio/inbound-sms.json").items()}
        form.update(Body=body, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, From=sender, To=to)
        path = "/webhooks/twilio/sms/inbound"
        signature = twilio_signature(self.url + path, form)
        answer = httpx.post(self.url + path, data=form, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200
        return " ".join(m.text or "" for m in ET.fromstring(answer.text).iter("Message"))


@pytest.fixture
def live(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    fake: FakeGoogle,
    consent_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Live]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake Google is plain http
    sender = RecordingSender()
    for _ in range(5):
        port = reserve_port()
        base = f"http://127.0.0.1:{port}"
        secrets_file = tmp_path / "client_secret.json"
        served = settings.model_copy(
            update={
                "public_base_url": base,
                "token_encryption_keys": SecretStr(generate_key()),
                "token_key_file": tmp_path / "unused.key",
                "google_client_secrets_file": secrets_file,
                "google_calendar_api_endpoint": fake.api_endpoint,
            }
        )
        client = fake.client_secrets(redirect_uri(served))
        client["web"]["auth_uri"] = consent_url
        secrets_file.write_text(json.dumps(client))
        app = create_app(served, session_factory=session_factory, clock=clock, sms_sender=sender)
        try:
            with serve(app, port) as url:
                yield Live(url, sender, served)
                return
        except RuntimeError:
            continue  # another engineer took the port between probe and bind
    pytest.fail("could not start the server on a port in 18800-18899")


def new_page(browser: Any, viewport: dict[str, int], **options: Any) -> Any:
    context = browser.new_context(viewport=viewport, **options)
    return context.new_page()


def sign_in(page: Any, live: Live, phone: str) -> None:
    page.goto(f"{live.url}/dashboard/sign-in")
    page.get_by_label("Your phone number").fill(phone)
    page.get_by_role("button", name="Text me a sign-in link").click()
    page.get_by_text("we texted it a link").wait_for()
    link = LINK.search(live.sender.last_to(phone))
    assert link, "no link texted"
    page.goto(link[0])
    page.get_by_role("button", name="Continue to your dashboard").click()
    page.get_by_role("heading", name="Upcoming appointments").wait_for()


def test_sign_in_by_texted_link_at_phone_and_desktop_widths(
    browser: Any, live: Live, demo: DemoData, session_factory: sessionmaker[Session]
) -> None:
    book(session_factory, demo, 26, key="a")
    book(session_factory, demo, 30, contact="+14155550151", key="b")
    for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page = new_page(browser, viewport)
        sign_in(page, live, demo.caller)
        assert "#t=" not in page.url  # the token left the address bar
        assert page.get_by_text("Tuesday 24 November 2026").is_visible()
        screenshot(page, f"agenda-{name}")
        page.context.close()


def test_every_page_has_no_serious_accessibility_violation(
    browser: Any, live: Live, demo: DemoData, session_factory: sessionmaker[Session]
) -> None:
    row = book(session_factory, demo, 26, key="a")
    with session_factory() as session:
        chat = Conversation(channel="sms", external_id="a11y", agent_id=demo.agent_id)
        session.add(chat)
        session.commit()
        chat_id = chat.id
    found: dict[str, Any] = {}
    for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        # axe is injected as a script tag, which the pages' CSP would (rightly) block.
        page = new_page(browser, viewport, bypass_csp=True)
        page.goto(f"{live.url}/dashboard/sign-in")
        found[f"sign-in/{name}"] = axe_violations(page)
        sign_in(page, live, demo.caller)
        for path in (*PAGES, f"conversations/{chat_id}", f"appointments/{row}"):
            page.goto(f"{live.url}/dashboard/a/{demo.agent_id}/{path}")
            found[f"{path}/{name}"] = axe_violations(page)
            shot = path.split("/")[0].rstrip("s") if "/" in path else path
            screenshot(page, f"{shot}-{name}")
        page.goto(f"{live.url}/dashboard/lang/es?next=/dashboard/a/{demo.agent_id}/settings")
        page.get_by_role("heading", name="Ajustes").wait_for()
        found[f"settings-es/{name}"] = axe_violations(page)
        page.context.close()
    assert {k: v for k, v in found.items() if v} == {}


def test_change_hours_and_the_agent_offers_the_new_times_over_sms(
    browser: Any, live: Live, demo: DemoData, db: Reader
) -> None:
    page = new_page(browser, PHONE)
    sign_in(page, live, demo.caller)
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Tuesday").fill("18:00-20:00")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("status").filter(has_text="Saved.").wait_for()
    assert page.get_by_label("Tuesday").input_value() == "18:00-20:00"
    # A mistake is shown beside its field and nothing is saved.
    page.get_by_label("Wednesday").fill("17:00-09:00")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator("#e-hours_wed").wait_for()
    assert "closes before it opens" in page.locator("#e-hours_wed").inner_text()
    assert page.get_by_label("Wednesday").get_attribute("aria-invalid") == "true"
    screenshot(page, "settings-error-phone")
    assert db.get(Agent, demo.agent_id).weekly_hours["wed"][0] == ["09:00", "12:00"]

    offer = live.sms("+14155550177", demo.dedicated_line, "book a consultation tomorrow", "SMb1")
    assert "6:00 PM" in offer and "9:00 AM" not in offer


def test_cancel_an_appointment_from_the_agenda(
    browser: Any, live: Live, demo: DemoData, session_factory: sessionmaker[Session], db: Reader
) -> None:
    row = book(session_factory, demo, 26, key="a")
    page = new_page(browser, DESKTOP)
    sign_in(page, live, demo.caller)
    page.get_by_role("link", name="Cancel or move 10:00").click()
    page.get_by_role("button", name="Cancel this appointment").click()
    # htmx swaps the forms for the tool's answer, without a reload.
    page.get_by_role("status").filter(has_text="Cancelled your consultation").wait_for()
    assert db.get(Appointment, row).status == "cancelled"


def test_a_live_sms_turn_appears_without_reload(
    browser: Any, live: Live, demo: DemoData, db: Reader
) -> None:
    caller = "+14155550166"
    live.sms(caller, demo.dedicated_line, "hi", "SMlive1")
    chat_id = db.scalar(select(Conversation.id))
    page = new_page(browser, PHONE)
    sign_in(page, live, demo.caller)
    page.goto(f"{live.url}/dashboard/a/{demo.agent_id}/conversations/{chat_id}")
    page.locator("#turns li").first.wait_for()
    before = page.locator("#turns li").count()
    page.evaluate("window.__marker = 'same page'")
    live.sms(caller, demo.dedicated_line, "book a haircut on friday", "SMlive2")
    page.locator("#turns li").filter(has_text="book a haircut on friday").wait_for(timeout=8000)
    assert page.locator("#turns li").count() >= before + 2  # the text and the agent's reply
    assert page.evaluate("window.__marker") == "same page"


def test_connect_a_calendar_against_a_fake_google(
    browser: Any, live: Live, demo: DemoData, fake: FakeGoogle, db: Reader
) -> None:
    page = new_page(browser, DESKTOP)
    sign_in(page, live, demo.caller)
    page.get_by_role("link", name="Calendar").click()
    page.get_by_role("link", name="Connect Google Calendar").click()
    page.get_by_role("heading", name="Google Calendar connected").wait_for()
    connection = db.scalar(select(CalendarConnection))
    assert connection is not None and connection.status == "active"
    page.goto(f"{live.url}/dashboard/a/{demo.agent_id}/calendar")
    assert page.locator("#cal-status").inner_text() == "active"
    page.get_by_role("button", name="Disconnect").click()
    page.get_by_role("link", name="Connect Google Calendar").wait_for()
    assert page.locator("#cal-status").inner_text() == "disconnected"


def test_another_owners_pages_are_refused(
    browser: Any, live: Live, demo: DemoData, other_owner: tuple[str, str, str]
) -> None:
    _, other_agent, other_phone = other_owner
    page = new_page(browser, PHONE)
    sign_in(page, live, other_phone)
    assert f"/dashboard/a/{other_agent}/agenda" in page.url
    for path in PAGES:
        response = page.goto(f"{live.url}/dashboard/a/{demo.agent_id}/{path}")
        assert response is not None and response.status == 404
    assert "Sam" not in page.content()
