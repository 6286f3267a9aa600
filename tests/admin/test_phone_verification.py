"""Registering a number texts a code; only the right code, in time, within the attempts,
verifies it; only a verified number routes; a number moves only once the new owner proves it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.models import AuditEntry, PhoneNumber, PhoneVerification
from app.security.api_keys import Role
from tests.admin.conftest import (
    Api,
    RecordingSender,
    create_agent,
    create_user,
    make_key,
    verified_number,
)
from tests.conftest import Reader, TwilioClient

NUMBER = "+14155550177"


def inbound(twilio: TwilioClient, sid: str, sender: str = NUMBER) -> str:
    params = {"MessageSid": sid, "From": sender, "To": "+15005550006", "Body": "hello"}
    response = twilio.post("/webhooks/twilio/sms/inbound", params)
    assert response.status_code == 200
    return response.text


def register(api: Api, user_id: str, number: str = NUMBER) -> dict[str, Any]:
    response = api.post(f"/users/{user_id}/phone-numbers", json={"number": number})
    assert response.status_code == 202, response.text
    return response.json()


def test_code_is_texted_stored_hashed_and_verifies(
    api: Api, sender: RecordingSender, session: Session, twilio: TwilioClient
) -> None:
    user = create_user(api)
    create_agent(api, user["id"])
    registered = register(api, user["id"], "(415) 555-0177")
    assert registered["status"] == "code_sent"
    assert registered["phone_number"]["number"] == "+1••••••0177"
    assert registered["phone_number"]["verified"] is False
    code = sender.last_code(NUMBER)
    stored = session.scalars(select(PhoneVerification.code_hash)).all()
    assert len(stored) == 1 and code not in stored[0]
    session.rollback()  # end the read: SQLite writers wait for it

    assert "not verified" in inbound(twilio, "SM" + "1" * 32)
    number_id = registered["phone_number"]["id"]
    ok = api.post(f"/phone-numbers/{number_id}/verify", json={"code": code})
    assert ok.json()["status"] == "verified"
    assert ok.json()["phone_number"]["verified"] is True
    assert "not verified" not in inbound(twilio, "SM" + "2" * 32)
    # The code is spent.
    again = api.post(f"/phone-numbers/{number_id}/verify", json={"code": code})
    assert again.json()["status"] == "no_pending"
    details = session.scalars(select(AuditEntry.details)).all()
    assert code not in str(details) and NUMBER not in str(details)


def test_wrong_codes_lock_the_code(api: Api, sender: RecordingSender) -> None:
    user = create_user(api)
    number_id = register(api, user["id"])["phone_number"]["id"]
    right = sender.last_code(NUMBER)
    wrong = "000000" if right != "000000" else "111111"
    answers = [
        api.post(f"/phone-numbers/{number_id}/verify", json={"code": wrong}).json()
        for _ in range(5)
    ]
    assert [a["status"] for a in answers] == ["wrong_code"] * 4 + ["locked"]
    assert [a["attempts_left"] for a in answers[:4]] == [4, 3, 2, 1]
    late = api.post(f"/phone-numbers/{number_id}/verify", json={"code": right})
    assert late.json()["status"] == "locked"
    assert late.json()["phone_number"]["verified"] is False
    # A fresh code works again.
    assert api.post(f"/phone-numbers/{number_id}/resend").status_code == 202
    fresh = sender.last_code(NUMBER)
    done = api.post(f"/phone-numbers/{number_id}/verify", json={"code": fresh})
    assert done.json()["status"] == "verified"


def test_code_expires(api: Api, sender: RecordingSender, clock: FixedClock) -> None:
    user = create_user(api)
    number_id = register(api, user["id"])["phone_number"]["id"]
    code = sender.last_code(NUMBER)
    clock.advance(minutes=10)
    expired = api.post(f"/phone-numbers/{number_id}/verify", json={"code": code})
    assert expired.json()["status"] == "expired"


def test_resend_replaces_the_old_code_and_is_capped(api: Api, sender: RecordingSender) -> None:
    user = create_user(api)
    number_id = register(api, user["id"])["phone_number"]["id"]
    first = sender.last_code(NUMBER)
    statuses = [api.post(f"/phone-numbers/{number_id}/resend").status_code for _ in range(5)]
    assert statuses == [202, 202, 202, 202, 409]
    latest = sender.last_code(NUMBER)
    if first != latest:
        old = api.post(f"/phone-numbers/{number_id}/verify", json={"code": first})
        assert old.json()["status"] == "wrong_code"
    assert len([to for to, _ in sender.sent if to == NUMBER]) == 5


def test_number_moves_only_after_the_new_owner_verifies(
    api: Api, sender: RecordingSender, session: Session, twilio: TwilioClient
) -> None:
    old_owner, new_owner = create_user(api, "Old"), create_user(api, "New")
    old_agent = create_agent(api, old_owner["id"], greeting="old")
    new_agent = create_agent(api, new_owner["id"], greeting="new")
    number_id = verified_number(api, sender, old_owner["id"], NUMBER)

    moving = register(api, new_owner["id"])
    assert moving["phone_number"]["id"] == number_id
    assert moving["phone_number"]["user_id"] == old_owner["id"]
    assert moving["phone_number"]["verified"] is True  # still routes to the old owner
    row = session.get(PhoneNumber, number_id)
    assert row is not None and row.user_id == old_owner["id"]
    session.rollback()

    code = sender.last_code(NUMBER)
    moved = api.post(f"/phone-numbers/{number_id}/verify", json={"code": code}).json()
    assert moved["status"] == "verified"
    assert moved["phone_number"]["user_id"] == new_owner["id"]
    session.expire_all()
    row = session.get(PhoneNumber, number_id)
    assert row is not None and row.user_id == new_owner["id"] and row.agent_id is None
    entry = session.scalar(
        select(AuditEntry)
        .where(AuditEntry.action == "admin.phone.verify")
        .order_by(AuditEntry.id.desc())
    )
    assert entry is not None
    assert entry.details["moved_from"] == old_owner["id"]
    assert entry.details["moved_to"] == new_owner["id"]
    assert old_agent["id"] != new_agent["id"]


def test_opted_out_number_gets_no_code(api: Api, sender: RecordingSender, twilio: TwilioClient):
    stop = {"MessageSid": "SM" + "9" * 32, "From": NUMBER, "To": "+15005550006", "Body": "STOP"}
    twilio.post("/webhooks/twilio/sms/inbound", stop)
    user = create_user(api)
    refused = api.post(f"/users/{user['id']}/phone-numbers", json={"number": NUMBER})
    assert refused.status_code == 409
    assert refused.json()["error"] == "cannot_send_code"
    assert sender.sent == []


def test_invalid_number_and_removal(api: Api, sender: RecordingSender, twilio: TwilioClient):
    user = create_user(api)
    create_agent(api, user["id"])
    bad = api.post(f"/users/{user['id']}/phone-numbers", json={"number": "12"})
    assert bad.status_code == 422 and bad.json()["fields"][0]["loc"][-1] == "number"
    number_id = verified_number(api, sender, user["id"], NUMBER)
    assert api.delete(f"/phone-numbers/{number_id}").status_code == 204
    assert api.get(f"/phone-numbers/{number_id}").status_code == 404
    assert "isn't registered" in inbound(twilio, "SM" + "3" * 32)


def test_only_admins_add_agent_lines(api: Api, keys: dict[str, str]) -> None:
    user = create_user(api)
    agent = create_agent(api, user["id"])
    body = {"number": "+15005550099", "purpose": "agent_line", "agent_id": agent["id"]}
    operator = api.as_key(keys["operator"])
    assert operator.post(f"/users/{user['id']}/phone-numbers", json=body).status_code == 403
    added = api.post(f"/users/{user['id']}/phone-numbers", json=body)
    assert added.status_code == 202 and added.json()["status"] == "verified"


@pytest.mark.parametrize("b_state", ["pending", "verified"])
def test_a_scoped_key_learns_nothing_of_another_users_number(
    api: Api,
    sender: RecordingSender,
    session_factory: sessionmaker[Session],
    db: Reader,
    b_state: str,
) -> None:
    """Registering user B's number under user A with A's scoped key answers exactly as
    for a new number: nothing of B (user id, agent, verification) comes back."""
    user_a, user_b = create_user(api, "Ana"), create_user(api, "Bo")
    agent_b = create_agent(api, user_b["id"])
    if b_state == "verified":
        number_id = verified_number(api, sender, user_b["id"], NUMBER)
    else:
        number_id = register(api, user_b["id"])["phone_number"]["id"]
    scoped = api.as_key(make_key(session_factory, Role.OPERATOR, user_a["id"]))

    answer = register(scoped, user_a["id"])
    fresh = register(scoped, user_a["id"], "+14155550166")
    assert set(answer) == set(fresh)
    assert answer["status"] == fresh["status"] == "code_sent"
    for view in (answer["phone_number"], scoped.get(f"/phone-numbers/{number_id}").json()):
        assert view["user_id"] == user_a["id"] and view["agent_id"] is None
        assert view["verified"] is False and view["verified_at"] is None
    text = json.dumps(answer) + scoped.get(f"/phone-numbers/{number_id}").text
    assert user_b["id"] not in text and agent_b["id"] not in text
    wrong = scoped.post(f"/phone-numbers/{number_id}/verify", json={"code": "000000"})
    assert user_b["id"] not in wrong.text
    # B keeps the number until the code texted to it is entered.
    assert db.get(PhoneNumber, number_id).user_id == user_b["id"]
    code = sender.last_code(NUMBER)
    moved = scoped.post(f"/phone-numbers/{number_id}/verify", json={"code": code}).json()
    assert moved["status"] == "verified" and moved["phone_number"]["user_id"] == user_a["id"]
