"""The LLM engine's own cost per turn, with the model answering at once from the local
fake (python -m app fake-openai, in its own process so its CPU is not ours).

Subject: one LLM engine turn for "book a haircut tomorrow at 3pm": three model rounds
(check_availability, book_appointment prepared, the question), the tools on SQLite,
guardrails, history and prompt. Reported: the whole turn, the model's own time (the
three HTTP requests, as the engine measures them), the overhead above it (target
p99 <= 10 ms), and this process's CPU per turn, also without the CPU spent inside the
OpenAI client (wall times swing with the machine's load; CPU much less). Baseline in
the same run: the offline engine's turn on the same phrase.

Also the same turn as a webhook runs it (app/webhooks/turns.py): no model request inside
the write transaction, so each of the three requests rolls the turn back and runs it
again with the answer (four attempts, the requests sent once). Reported: that turn's wall
time and CPU, and its ratio to the engine called directly (the price of never holding
the database's write turn while the model thinks).

    .venv/bin/python bench/llm_engine.py [--port 18402]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from openai import OpenAI

from app.agent.engine import Reply, Turn
from app.agent.llm import LlmEngine, Options
from app.agent.offline import OfflineEngine
from app.calendar.local import LocalCalendar
from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.demo import load_demo
from app.models import Agent
from app.tools.service import SchedulingTools, ToolContext
from app.webhooks.turns import run_turn
from bench.stats import report

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
ROUNDS = 300
WARMUP = 20
PHRASE = "Can I book a haircut tomorrow at 3pm?"
HISTORY = [("in", "hi"), ("out", "Hi! I can book, move, list or cancel appointments.")]
ROOT = Path(__file__).resolve().parent.parent


def start_fake(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "app", "fake-openai", "--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=0.5).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError(f"fake server did not start on port {port}")


def options() -> Options:
    return Options(
        model="fake",
        temperature=0.0,
        timeout=5.0,
        budgets={"sms": 10.0, "voice": 10.0},
        max_rounds=4,
        max_output_tokens=200,
        history_tokens=1500,
    )


class ClientCpu:
    """CPU this process spends inside the OpenAI client's requests (HTTP, JSON, parsing):
    the part of the engine's CPU that is talking to the model."""

    def __init__(self, client: OpenAI) -> None:
        self.total = 0.0
        self.post = client.post
        client.post = self.timed  # type: ignore[method-assign]

    def timed(self, *args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return self.post(*args, **kwargs)
        finally:
            self.total += time.process_time() - started


Samples = tuple[list[float], list[float], list[float], list[float]]


def measure(engine: Any, turn_for: Any, rounds: int, client_cpu: ClientCpu | None) -> Samples:
    """Per turn: wall time, model time (LLM only), CPU of this process, and that CPU
    outside the model client."""
    walls, models, cpus, own = [], [], [], []
    for _ in range(rounds):
        turn = turn_for()
        in_client = client_cpu.total if client_cpu else 0.0
        cpu, wall = time.process_time(), time.perf_counter()
        reply: Reply = engine.respond(turn)
        walls.append((time.perf_counter() - wall) * 1000)
        spent = time.process_time() - cpu
        cpus.append(spent * 1000)
        outside = spent - ((client_cpu.total - in_client) if client_cpu else 0.0)
        own.append(outside * 1000)
        models.append(float(reply.meta.get("model_ms", 0.0)))
        assert reply.tool_calls, reply.text
    return walls, models, cpus, own


class InTurn:
    """The LLM engine as a webhook runs it: under run_turn, each attempt with its own
    agent and tools (an attempt's rollback detaches the last one's), rolled back after."""

    def __init__(self, engine: LlmEngine, session: Any, agent_id: str, caller: str) -> None:
        self.engine = engine
        self.session = session
        self.agent_id = agent_id
        self.caller = caller

    def respond(self, turn: Turn) -> Reply:
        def attempt(session: Any) -> Reply:
            agent = session.get(Agent, self.agent_id)
            context = ToolContext(session, agent, LocalCalendar(session), NOW, self.caller, "sms")
            tools = SchedulingTools(context)
            return self.engine.respond(
                Turn(turn.text, "sms", NOW, agent, tools, {}, "Sam", history=list(HISTORY))
            )

        try:
            return run_turn(self.session, attempt)
        finally:
            self.session.rollback()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18402)
    port = parser.parse_args().port
    server = start_fake(port)
    try:
        with tempfile.TemporaryDirectory() as folder:
            return run(folder, port)
    finally:
        server.terminate()
        server.wait(10)


def run(folder: str, port: int) -> int:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{folder}/bench.db")
    db = make_engine(settings)
    upgrade_to_head(db)
    factory = make_session_factory(db)
    with factory() as session:
        demo = load_demo(session)
    client = OpenAI(
        api_key="local",
        base_url=f"http://127.0.0.1:{port}/v1",
        max_retries=0,
        http_client=httpx.Client(),
    )
    client_cpu = ClientCpu(client)
    llm, offline = LlmEngine(client, options()), OfflineEngine()
    with factory() as session:
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None
        tools = SchedulingTools(
            ToolContext(session, agent, LocalCalendar(session), NOW, demo.caller, "sms")
        )

        def turn() -> Turn:
            return Turn(PHRASE, "sms", NOW, agent, tools, {}, "Sam", history=list(HISTORY))

        measure(llm, turn, WARMUP, client_cpu)
        measure(offline, turn, WARMUP, None)
        walls, models, cpus, own = measure(llm, turn, ROUNDS, client_cpu)
        base_walls, _, base_cpus, _ = measure(offline, turn, ROUNDS, None)
        session.rollback()
        in_turn = InTurn(llm, session, demo.agent_id, demo.caller)
        measure(in_turn, turn, WARMUP, None)
        turn_walls, _, turn_cpus, _ = measure(in_turn, turn, ROUNDS, None)
    db.dispose()
    overhead = [wall - model for wall, model in zip(walls, models, strict=True)]
    base = report("baseline: offline engine turn", base_walls)
    report("LLM engine turn (3 model rounds)", walls)
    report("  of which the model (fake, HTTP)", models)
    extra = report("LLM engine overhead above the model", overhead)
    cpu = report("LLM engine CPU per turn (this process)", cpus)
    report("  of which outside the model client", own)
    base_cpu = report("offline engine CPU per turn", base_cpus)
    print(
        f"overhead / offline turn: p50 x{extra['p50'] / base['p50']:.2f}, "
        f"p99 x{extra['p99'] / base['p99']:.2f}; CPU x{cpu['p50'] / base_cpu['p50']:.2f}"
    )
    print(f"target: overhead p99 <= 10 ms -> {'met' if extra['p99'] <= 10 else 'MISSED'}")
    direct = report("baseline: LLM engine turn called directly", walls)
    webhook = report("LLM turn under run_turn (requests between attempts)", turn_walls)
    webhook_cpu = report("  CPU per turn (this process)", turn_cpus)
    print(
        f"run_turn / direct: p50 x{webhook['p50'] / direct['p50']:.2f}, "
        f"p99 x{webhook['p99'] / direct['p99']:.2f}; CPU x{webhook_cpu['p50'] / cpu['p50']:.2f}"
    )
    return 0 if extra["p99"] <= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
