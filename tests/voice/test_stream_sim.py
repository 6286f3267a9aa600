"""`python -m app call --stream`: the simulator's streamed call, typed lines as speech."""

from __future__ import annotations

from sqlalchemy import select

from app.config import Settings
from app.demo import DemoData
from app.models import Appointment
from app.phone_sim import CallSimulator
from app.stream_sim import stream_call
from tests.conftest import Reader


def test_typed_lines_book_over_a_stream_and_the_agent_is_printed(
    server: str, stream_settings: Settings, streaming_agent: DemoData, db: Reader
) -> None:
    simulator = CallSimulator(
        stream_settings,
        server,
        streaming_agent.caller,
        stream_settings.agent_number,
        "TN-Validation-Passed-A",
    )
    printed: list[str] = []
    heard = stream_call(
        simulator, iter(["book a consultation tomorrow at 3pm", "yes"]), printed.append
    )
    assert heard is None  # the call ended on the stream: nothing to follow
    agent = [line for line in printed if line.startswith("agent> ")]
    assert "How can I help" in " ".join(agent[:3])
    assert any("Shall I go ahead" in line for line in agent)
    assert any("booked" in line for line in agent)
    assert printed[-1] == "(you hung up)"
    assert db.scalar(select(Appointment)) is not None


def test_after_a_deepgram_failure_the_simulator_goes_on_with_gather(
    server: str, stream_settings: Settings, streaming_agent: DemoData, fake
) -> None:
    fake.refuse = True
    simulator = CallSimulator(
        stream_settings, server, streaming_agent.caller, stream_settings.agent_number, None
    )
    printed: list[str] = []
    heard = stream_call(simulator, iter([]), printed.append)
    assert printed[-1] == "(the stream ended)"
    assert heard is not None and heard.gather is not None
    assert any("scheduling line" in text for text in heard.says)
