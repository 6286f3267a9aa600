"""The dashboard's calendar page offers Microsoft 365 through the same signed link."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.demo import DemoData
from tests.conftest import PUBLIC_BASE_URL
from tests.dashboard.conftest import RecordingSender, sign_in


def test_connect_microsoft_redirects_into_the_signed_microsoft_link(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    sign_in(client, sender, demo.caller)
    go = client.get(f"/dashboard/a/{demo.agent_id}/calendar/connect/microsoft")
    assert go.status_code == 303
    assert "/calendar/microsoft/connect?t=" in go.headers["location"]
    # Without a Microsoft client configured the link explains itself, never a 5xx.
    landing = client.get(go.headers["location"].removeprefix(PUBLIC_BASE_URL))
    assert landing.status_code == 503 and "Microsoft" in landing.text
