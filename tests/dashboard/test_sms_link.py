"""An owner texting "dashboard" / "link" (or Spanish) gets a sign-in link by SMS; anyone
else's words go to the conversation; a retried webhook texts nothing twice."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.dashboard import sms_link
from app.demo import DemoData
from tests.dashboard.conftest import LINK, RecordingSender, csrf_of
from tests.webhooks.test_sms_dialogues import Texter


def test_owner_texting_dashboard_gets_a_link_that_signs_in(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    owner = Texter(client, sender=demo.caller)
    reply = owner.text("Dashboard!", sid="SMdash0001")
    assert reply == "I've texted you a sign-in link for your dashboard."
    assert len(sender.sent) == 1 and sender.sent[0][0] == demo.caller
    token = LINK.search(sender.sent[0][1])
    assert token and token[1] not in reply
    # Twilio retries the same message: same answer, no second text.
    assert owner.text("Dashboard!", sid="SMdash0001") == reply
    assert len(sender.sent) == 1
    landing = client.get("/dashboard/auth")
    done = client.post("/dashboard/auth", data={"t": token[1], "csrf": csrf_of(landing.text)})
    assert done.status_code == 303 and "dash_session=" in done.headers["set-cookie"]


def test_spanish_request_gets_a_spanish_text(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    reply = Texter(client, sender=demo.caller).text("enlace")
    assert reply.startswith("Te envié")
    assert sender.sent[0][1].startswith("Tu panel: ")


def test_strangers_and_longer_messages_go_to_the_conversation(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    stranger = Texter(client, sender="+14155550177", to=demo.dedicated_line)
    assert "sign-in link" not in stranger.text("link")
    owner = Texter(client, sender=demo.caller)
    assert "sign-in link" not in owner.text("can you link me to a consultation tomorrow")
    assert sender.sent == []


def test_every_phrase_holds_a_cue() -> None:
    # The cue test must never turn away a request: each phrase holds one of the cues.
    for phrase in sms_link.ENGLISH | sms_link.SPANISH:
        assert any(cue in phrase for cue in sms_link.CUES), phrase


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Dashboard!", "en"),
        ("  LOG-IN ", "en"),
        ("sign... in?", "en"),
        ("¿Enlace del panel?", "es"),
        ("MI PANEL", "es"),
        ("book me tomorrow at 3", None),
        ("dashboard please", None),
        ("", None),
    ],
)
def test_requested(body: str, expected: str | None) -> None:
    assert sms_link.requested(body) == expected
