"""Cost of a turn: wrk against a real server process, pre-signed requests, both databases.

Load comes from wrk (Debian's package) with a Lua script cycling through N distinct,
correctly signed requests (bench/wrk_cycle.lua), so the client is not the bottleneck. The
server runs in its own process (`uvicorn app.main:create_default_app`, or `python -m app
serve --workers N`) on 127.0.0.1:186xx. For each path it prints throughput, the ratio to
the static TwiML endpoint in the same run, p50/p99 (wrk's), the server's CPU per request
(process CPU time / requests) and database round trips per request (app/bench_stats.py).

Paths: static TwiML (baseline; the script checks it saturates the server), an SMS turn
(each from a new caller to the demo agent's dedicated line, so every request is a full
turn), a VAPI book_appointment tool call (a new slot each time), a voice call's first
Gather turn (calls answered in a phase before it).

    .venv/bin/python bench/turn_cost.py                   # SQLite and PostgreSQL
    BENCH_DB=postgresql BENCH_SERVER_WORKERS=2 .venv/bin/python bench/turn_cost.py
    BENCH_SECONDS=10 BENCH_REQUESTS=20000 BENCH_CONNECTIONS=32 ...
    BENCH_PATHS=sms,vapi,voice,gather   (static always runs: it is the baseline)
    BENCH_ROUNDS=3   (static and the paths three times; prints each path's median multiple)

With one server process, each line is followed by its CPU per request split by thread:
the event loop ("loop"), the turns' worker threads, the background jobs, and threads
that ended during the run ("other").
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
from _phone_server import VAPI_SECRET, caller_number, prepare_database
from _proc import (
    cpu_seconds,
    postgres_database,
    serve,
    system_seconds,
    thread_cpu,
    thread_kind,
    thread_names,
    thread_switches,
)
from twilio.request_validator import RequestValidator

from app.config import Settings
from app.db import make_engine, make_session_factory
from app.demo import load_demo

HERE = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("BENCH_SECONDS", 8))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", 20_000))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 32))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", 2))
SERVER_WORKERS = int(os.environ.get("BENCH_SERVER_WORKERS", 1))
PATHS = os.environ.get("BENCH_PATHS", "sms,vapi,voice,gather").split(",")
# Rounds of (static, then each path): on a shared machine whose speed drifts, the median of
# the rounds' multiples is steadier than one run's.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 1))
VAPI_AGENTS = 32
TWILIO_TOKEN = "bench-twilio-token"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Run:
    label: str
    requests: int
    seconds: float
    p50: float
    p99: float
    bad: int
    cpu: float
    trips: int | None
    # Requests past the end of the distinct set: retries, answered from the stored
    # response, so they make the path look cheaper; such a line is marked.
    repeats: int = 0
    # CPU seconds by part of the server (event loop, turn workers, background jobs).
    parts: dict[str, float] = field(default_factory=dict)
    # Context switches of the event loop's thread and of the turns' worker threads.
    switches: dict[str, int] = field(default_factory=dict)
    # Of `cpu`, the seconds spent in the kernel on the server's behalf (syscalls).
    kernel: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / self.requests

    def line(self, baseline: Run | None) -> str:
        ratio = f"ratio {self.rate / baseline.rate:6.3f}" if baseline else "baseline    "
        # CPU per request as a multiple of a static request's: what a turn costs the
        # server, however busy the machine (throughput ratios move with the load).
        multiple = self.cpu_per_request / baseline.cpu_per_request if baseline else None
        cost = f" = {multiple:5.1f}x static" if multiple is not None else ""
        trips = f"{self.trips / self.requests:5.1f}" if self.trips is not None else "  n/a"
        return (
            f"{self.label:<22} {self.rate:8.0f} req/s  {ratio}  p50 {self.p50:7.2f} ms  "
            f"p99 {self.p99:7.2f} ms  CPU {1000 * self.cpu_per_request:6.2f} ms/req{cost}  "
            f"({self.cpu / self.seconds:4.2f} cores, "
            f"kernel {1000 * self.kernel / self.requests:.2f} ms)  "
            f"db trips/req {trips}  bad {self.bad}"
            + (f"  INCLUDES {self.repeats} RETRIES" if self.repeats else "")
            + self.split()
        )

    def split(self) -> str:
        if not self.parts:
            return ""
        shares = "  ".join(
            f"{kind} {1000 * seconds / self.requests:.2f}"
            for kind, seconds in sorted(self.parts.items())
        )
        switched = "  ".join(
            f"{kind} {count / self.requests:.1f}" for kind, count in sorted(self.switches.items())
        )
        return f"\n    ms/req by thread: {shares}\n    context switches/req: {switched}"


class Signer:
    def __init__(self, public: str) -> None:
        self.public = public
        self.validator = RequestValidator(TWILIO_TOKEN)

    def twilio(self, path: str, form: dict[str, str]) -> str:
        signature = self.validator.compute_signature(self.public + path, form)
        return f"{path}\tX-Twilio-Signature\t{signature}\t{FORM}\t{urlencode(form)}"


def new_caller(i: int) -> str:
    return f"+1415{2_000_000 + i:07d}"


def sms_lines(signer: Signer, line: str, offset: int, count: int) -> Iterator[str]:
    for i in range(offset, offset + count):
        sid = f"SM{i:032d}"
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": new_caller(i),
            "To": line,
            "Body": "hi, can I book a consultation tomorrow at 3pm?",
            "NumMedia": "0",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        yield signer.twilio("/webhooks/twilio/sms/inbound", form)


def call_form(line: str, i: int, **extra: str) -> dict[str, str]:
    return {
        "CallSid": f"CA{i:032d}",
        "AccountSid": "AC" + "0" * 32,
        "From": new_caller(i),
        "To": line,
        "Direction": "inbound",
        "CallStatus": "in-progress",
        **extra,
    }


def voice_lines(signer: Signer, line: str, count: int, offset: int = 0) -> Iterator[str]:
    for i in range(offset, offset + count):
        form = call_form(line, i, StirVerstat="TN-Validation-Passed-A", CallStatus="ringing")
        yield signer.twilio("/webhooks/twilio/voice/inbound", form)


def gather_lines(signer: Signer, line: str, count: int, offset: int = 0) -> Iterator[str]:
    for i in range(offset, offset + count):
        form = call_form(line, i, SpeechResult="what times do you have tomorrow afternoon")
        yield signer.twilio("/webhooks/twilio/voice/gather?turn=1", {**form, "Confidence": "0.9"})


def vapi_lines(count: int, offset: int = 0) -> Iterator[str]:
    first_day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0)
    for i in range(offset, offset + count):
        agent, slot = i % VAPI_AGENTS, i // VAPI_AGENTS
        day, index = divmod(slot, 31)  # 45-minute spacing: 30 minutes plus a 10-minute buffer
        start = (first_day + timedelta(days=day, minutes=45 * index)).isoformat()
        number = caller_number(agent)
        call = {
            "id": f"toolcall_{i}",
            "type": "function",
            "function": {"name": "book_appointment", "arguments": json.dumps({"start": start})},
        }
        message = {
            "type": "tool-calls",
            "call": {"id": f"call_{i}", "customer": {"number": number}},
            "customer": {"number": number},
            "toolCallList": [call],
        }
        body = json.dumps({"message": message})
        yield f"/webhooks/vapi\tX-Vapi-Secret\t{VAPI_SECRET}\tapplication/json\t{body}"


def static_lines(count: int) -> Iterator[str]:
    for i in range(count):
        yield f"/_bench/twiml\t\t\t{FORM}\t{urlencode({'MessageSid': f'SM{i}', 'Body': 'hi'})}"


class Bench:
    def __init__(self, base: str, pid: int, folder: Path, workers: int = 1) -> None:
        self.base, self.pid, self.folder = base, pid, folder
        self.workers = workers
        self.http = httpx.Client(timeout=10)

    def trips(self) -> int | None:
        if self.workers > 1:
            return None  # each process counts its own; one request sees one of them
        return int(self.http.get(self.base + "/_bench/db").json()["round_trips"])

    def run(self, label: str, lines: Iterator[str], expect: str, seconds: int = SECONDS) -> Run:
        data = self.folder / f"{label.replace(' ', '_')}.tsv"
        data.write_text("\n".join(lines) + "\n")
        distinct = sum(1 for _ in data.open())
        trips_before, cpu_before = self.trips(), cpu_seconds(self.pid)
        kernel_before = system_seconds(self.pid)
        threads_before = thread_cpu(self.pid) if self.workers == 1 else {}
        switches_before = thread_switches(self.pid) if self.workers == 1 else {}
        command = [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "wrk_cycle.lua"),
            self.base,
            "--",
            str(data),
            expect,
            str(WRK_THREADS),
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(self.pid) - cpu_before
        kernel = system_seconds(self.pid) - kernel_before
        parts, switches = (
            self.cpu_by_part(threads_before, cpu, switches_before)
            if self.workers == 1
            else ({}, {})
        )
        trips_after = self.trips()
        summary = json.loads(output.strip().splitlines()[-1])
        repeats = max(0, summary["requests"] - distinct) if "static" not in label else 0
        trips = None if trips_before is None else trips_after - trips_before
        return Run(
            label,
            summary["requests"],
            summary["seconds"],
            summary["p50_ms"],
            summary["p99_ms"],
            summary["bad"] + summary["errors"],
            cpu,
            trips,
            repeats,
            parts,
            switches,
            kernel,
        )

    def cpu_by_part(
        self, before: dict[int, float], cpu: float, switches_before: dict[int, int]
    ) -> tuple[dict[str, float], dict[str, int]]:
        """The run's CPU by part of the server (one process only): threads alive at the
        end, less what they had used before it; "other" is the rest of the process's
        CPU (threads that ended, unnamed threads). Then the context switches of the loop
        and the workers."""
        after, names = thread_cpu(self.pid), thread_names(self.pid)
        switched_after = thread_switches(self.pid)
        parts = {"loop": 0.0, "workers": 0.0, "jobs": 0.0}
        switches = {"loop": 0, "workers": 0}
        for tid, seconds in after.items():
            kind = thread_kind(self.pid, tid, names.get(tid))
            if kind in parts:
                parts[kind] += seconds - before.get(tid, 0.0)
            if kind in switches:
                switches[kind] += switched_after.get(tid, 0) - switches_before.get(tid, 0)
        parts["other"] = max(0.0, cpu - sum(parts.values()))
        return parts, switches


def seed(url: str) -> str:
    prepare_database(url, VAPI_AGENTS)
    engine = make_engine(Settings(_env_file=None, database_url=url))
    with make_session_factory(engine)() as session:
        line = load_demo(session).dedicated_line
    engine.dispose()
    return line


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder}/bench.db"
    else:
        with postgres_database() as url:
            yield url


def measure(kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        folder = Path(tmp)
        line = seed(url)
        env = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "VAPI_SECRET": VAPI_SECRET}
        with serve(url, env, workers=SERVER_WORKERS) as (base, pid):
            bench = Bench(base, pid, folder, SERVER_WORKERS)
            signer = Signer(base)
            print(f"\n{kind}: 1 server ({SERVER_WORKERS} process(es)), wrk {CONNECTIONS} conns")
            bench.run("warm-up static", static_lines(1000), "<Message>", seconds=2)
            bench.run("warm-up sms", sms_lines(signer, line, 10**6, 400), "<Message>", seconds=2)
            offsets: dict[str, int] = {}
            multiples: dict[str, list[float]] = {}
            for number in range(ROUNDS):
                if ROUNDS > 1:
                    print(f"round {number + 1} of {ROUNDS}")
                for label, run in one_round(bench, signer, line, offsets):
                    multiples.setdefault(label, []).append(run)
            if ROUNDS > 1:
                print_medians(multiples)


def one_round(
    bench: Bench, signer: Signer, line: str, offsets: dict[str, int]
) -> Iterator[tuple[str, float]]:
    """The static baseline, then each path against it: (label, CPU multiple) per path.
    Each round sends requests the earlier rounds did not (new callers, slots, calls)."""
    static = bench.run("static TwiML", static_lines(REQUESTS), "<Message>")
    saturated = static.cpu / static.seconds
    print(static.line(None))
    verdict = "saturated" if saturated >= 0.85 * SERVER_WORKERS else "NOT saturated"
    # Not saturated on a quiet machine: the client or the connections limit it.
    # On a busy one, the other processes' load says why.
    load = os.getloadavg()[0]
    print(f"  baseline server CPU {saturated:.2f} cores: {verdict} (load {load:.1f})")

    def path(label: str, lines: Iterator[str], expect: str, key: str, **kw: int) -> Run:
        run = bench.run(label, lines, expect, **kw)
        offsets[key] = offsets.get(key, 0) + run.requests
        print(run.line(static))
        return run

    if "sms" in PATHS:
        sms = path(
            "SMS turn", sms_lines(signer, line, offsets.get("sms", 0), REQUESTS), "<Message>", "sms"
        )
        yield "SMS turn", sms.cpu_per_request / static.cpu_per_request
    if "vapi" in PATHS:
        vapi = path(
            "VAPI book_appointment",
            vapi_lines(REQUESTS, offsets.get("vapi", 0)),
            '"results"',
            "vapi",
        )
        yield "VAPI book_appointment", vapi.cpu_per_request / static.cpu_per_request
    if "voice" in PATHS or "gather" in PATHS:
        first_call = offsets.get("voice", 0)
        voice = path(
            "voice call answered", voice_lines(signer, line, REQUESTS, first_call), "<Say", "voice"
        )
        yield "voice call answered", voice.cpu_per_request / static.cpu_per_request
        if "gather" in PATHS:
            # A quarter of the time: a Gather turn is cheaper than answering, and every
            # turn must belong to a call answered above (or it is a retry, marked).
            calls = min(voice.requests, REQUESTS)
            gather = path(
                "Gather turn",
                gather_lines(signer, line, calls, first_call),
                "<Say",
                "gather",
                seconds=max(1, SECONDS // 4),
            )
            yield "Gather turn", gather.cpu_per_request / static.cpu_per_request


def print_medians(multiples: dict[str, list[float]]) -> None:
    """Across rounds: each path's CPU multiple of the static request measured in its own
    round, so a machine whose speed drifts during the run moves both sides together."""
    print("CPU per request as a multiple of static, by round (median):")
    for label, found in multiples.items():
        rounds = "  ".join(f"{value:5.1f}" for value in found)
        print(f"  {label:<22} {rounds}   median {statistics.median(found):5.1f}x")


def main() -> None:
    kinds = os.environ.get("BENCH_DB", "sqlite,postgresql").split(",")
    for kind in kinds:
        measure(kind.strip())


if __name__ == "__main__":
    main()
