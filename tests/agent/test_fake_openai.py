"""The local OpenAI-compatible server on a real port, driven by the real LLM engine
(openai client, httpx, the tools on the database): scripted, recorded and replayed."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import tests.agent.llm_support as support
from app.agent.fake_openai import Recorder, Replay, running
from app.demo import DemoData
from app.models import Appointment, Conversation, Message
from tests.agent.llm_support import Caller


def free_port() -> int:
    for port in range(18440, 18500):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 18440-18499")


@pytest.fixture
def point_engine_at(monkeypatch: pytest.MonkeyPatch) -> Any:
    def point(base_url: str) -> None:
        def make_engine(**overrides: Any) -> Any:
            client = OpenAI(
                api_key="sk-local", base_url=base_url, max_retries=0, http_client=httpx.Client()
            )
            return support.LlmEngine(client, support.options(**overrides))

        monkeypatch.setattr(support, "make_engine", make_engine)

    return point


@pytest.fixture
def scripted_url() -> Iterator[str]:
    with running(port=free_port()) as url:
        yield url


def confirmed(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        rows = session.scalars(select(Appointment).where(Appointment.status == "confirmed"))
        return [f"{a.appointment_type} {a.start_at.isoformat()}" for a in rows]


def test_scripted_model_books_a_haircut_with_the_persons_yes(
    scripted_url: str, point_engine_at, session_factory, demo: DemoData
):
    point_engine_at(scripted_url)
    owner = Caller(session_factory, demo, demo.caller)
    reply = owner.say("Can I book a haircut tomorrow at 3pm?")
    assert reply == "Shall I book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm."
    assert owner.last.meta["answered_by"] == "model" and owner.last.meta["rounds"] == 3
    assert confirmed(session_factory) == []
    reply = owner.say("yes")
    assert reply == "Booked: your haircut on Tue Nov 24 at 3:00 PM. Anything else?"
    assert confirmed(session_factory) == ["haircut 2026-11-24T23:00:00+00:00"]


def test_recorded_conversation_replays_and_unknown_requests_fall_back(
    scripted_url: str, point_engine_at, session_factory, demo: DemoData, tmp_path: Path
):
    recording = tmp_path / "rec.jsonl"
    with running(Recorder(recording, scripted_url), port=free_port()) as recorder_url:
        point_engine_at(recorder_url)
        first = Caller(session_factory, demo, demo.caller, external_id="rec")
        recorded = [first.say("what's free tomorrow afternoon?"), first.say("the second one")]
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    assert len(lines) == 4 and all(line["response"]["choices"] for line in lines)

    with running(Replay(recording), port=free_port()) as replay_url:
        point_engine_at(replay_url)
        # A fresh database, the same words: the same requests, answered from the file.
        with session_factory() as session:
            session.execute(Appointment.__table__.delete())
            session.execute(Message.__table__.delete())
            session.execute(Conversation.__table__.delete())
            session.commit()
        again = Caller(session_factory, demo, demo.caller, external_id="rec")
        assert [
            again.say("what's free tomorrow afternoon?"),
            again.say("the second one"),
        ] == recorded
        assert again.last.meta["fallback"] is None
        reply = again.say("something never recorded")
        assert again.last.meta["fallback"] == "api_error_404" and reply


def test_bad_requests_get_a_clear_error(scripted_url: str):
    response = httpx.post(f"{scripted_url}/chat/completions", content=b"not json")
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    response = httpx.post(f"{scripted_url}/chat/completions", json={"model": "x"})
    assert response.status_code == 400


def test_in_process_client_drives_the_engine_without_a_port(
    monkeypatch: pytest.MonkeyPatch, session_factory, demo: DemoData
):
    from app.agent.fake_openai import in_process_client

    monkeypatch.setattr(
        support,
        "make_engine",
        lambda **o: support.LlmEngine(in_process_client(), support.options(**o)),
    )
    owner = Caller(session_factory, demo, demo.caller)
    assert owner.say("any haircut times on Friday afternoon?").startswith("Free: Fri Nov 27")
    reply = owner.say("the second one")
    assert reply.startswith("Shall I book a haircut on Fri Nov 27")
    owner.say("yes")
    assert len(confirmed(session_factory)) == 1
