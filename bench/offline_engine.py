"""The offline engine's own cost per turn, in process on SQLite.

Subject: one engine turn (read the message, one check_availability through the tool
registry, the reply) for phrases callers really say. Baseline in the same run: that
same check_availability call alone, so the ratio is what understanding and wording add.
Also the date reader alone vs a bare dateparser.parse of the same phrase.

    .venv/bin/python bench/offline_engine.py   # target: engine turn p99 <= 2x the tool call

Instruction counts (steady on a busy machine): under callgrind, only the named batches
are instrumented, one dump each (`callgrind_annotate` or the dump's `summary:` line gives
its Ir; divide by BENCH_ROUNDS). `read` is understanding.read alone, as a turn calls it.

    BENCH_ROUNDS=40 BENCH_CALLGRIND=turn,read,tool valgrind --tool=callgrind \
      --instr-atstart=no --callgrind-out-file=bench/out/engine.%p .venv/bin/python \
      bench/offline_engine.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dateparser

from app.agent.dates import parse_when
from app.agent.engine import Turn
from app.agent.offline import OfflineEngine
from app.agent.understanding import read
from app.calendar.local import LocalCalendar
from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.demo import load_demo
from app.models import Agent
from app.tools.registry import run_tool
from app.tools.service import SchedulingTools, ToolContext
from bench.stats import report

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 400))
CALLGRIND = [part for part in os.environ.get("BENCH_CALLGRIND", "").split(",") if part]
PHRASES = [
    "Hi, can I book a haircut tomorrow at 3pm?",
    "what consultation times do you have next Tuesday morning?",
    "any haircut openings on Friday afternoon?",
    "book me a consultation on december 3rd at 10",
]


def _callgrind(*action: str) -> None:
    subprocess.run(
        ["callgrind_control", *action, str(os.getpid())], check=True, capture_output=True
    )


def timed(rounds: int, work: Callable[[int], object], label: str = "") -> list[float]:
    counted = label in CALLGRIND
    if counted:
        _callgrind("-z")  # one action per call: callgrind_control keeps only the last
        _callgrind("-i", "on")
    samples = []
    for i in range(rounds):
        start = time.perf_counter()
        work(i)
        samples.append((time.perf_counter() - start) * 1000)
    if counted:
        _callgrind("-i", "off")
        _callgrind(f"--dump={label}")
    return samples


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(_env_file=None, database_url=f"sqlite:///{folder}/bench.db")
        db = make_engine(settings)
        upgrade_to_head(db)
        factory = make_session_factory(db)
        with factory() as session:
            demo = load_demo(session)
        with factory() as session:
            agent = session.get(Agent, demo.agent_id)
            assert agent is not None
            tools = SchedulingTools(
                ToolContext(
                    session=session,
                    agent=agent,
                    calendar=LocalCalendar(session),
                    now=NOW,
                    caller=demo.caller,
                    channel="sms",
                )
            )
            engine = OfflineEngine()
            local_now = NOW.astimezone(tools.schedule.zone)

            def engine_turn(i: int) -> object:
                turn = Turn(PHRASES[i % len(PHRASES)], "sms", NOW, agent, tools, {}, "Sam")
                reply = engine.respond(turn)
                assert reply.tool_calls and reply.tool_calls[0]["ok"], reply.text
                return reply

            def tool_only(i: int) -> object:
                day = "2026-11-24" if i % 2 else "2026-12-01"
                args = {"date": day, "appointment_type": "haircut", "limit": 20}
                return run_tool(tools, "check_availability", args)

            def reader(i: int) -> object:
                return parse_when(PHRASES[i % len(PHRASES)], local_now, tools.schedule.hours)

            def bare_dateparser(i: int) -> object:
                return dateparser.parse(
                    PHRASES[i % len(PHRASES)],
                    languages=["en"],
                    settings={"RELATIVE_BASE": local_now.replace(tzinfo=None)},
                )

            def understanding_read(i: int) -> object:
                return read(PHRASES[i % len(PHRASES)], local_now, tools.schedule.hours, types)

            types = list(tools.schedule.types)
            for work in (engine_turn, tool_only, reader, bare_dateparser, understanding_read):
                timed(30, work)  # warm-up: imports, caches, first queries
            tool = report(
                "baseline: check_availability tool call", timed(ROUNDS, tool_only, "tool")
            )
            turn = report(
                "offline engine turn (read + tool + reply)", timed(ROUNDS, engine_turn, "turn")
            )
            report("understanding.read(phrase)", timed(ROUNDS, understanding_read, "read"))
            parse = report("baseline: dateparser.parse(phrase)", timed(ROUNDS, bare_dateparser))
            ours = report("parse_when(phrase)", timed(ROUNDS, reader))
            session.rollback()
        db.dispose()
    ratio_turn = turn["p99"] / tool["p99"]
    print(f"engine turn / tool call: p50 x{turn['p50'] / tool['p50']:.2f}, p99 x{ratio_turn:.2f}")
    print(f"parse_when / dateparser: p50 x{ours['p50'] / parse['p50']:.2f}")
    return 0 if ratio_turn <= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
