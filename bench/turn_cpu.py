"""CPU per turn in one process, no load generator: N SMS turns (each from a new caller
to the demo agent's dedicated line) and N Gather turns, through the real app in-process
(TestClient), timed with process CPU time. Steadier than a server under wrk on a shared
machine, since nothing else's scheduling is counted; the TestClient's own cost is
included (the same for any version of the app), so compare versions with it, not with
bench/turn_cost.py.

    .venv/bin/python bench/turn_cpu.py                               # SQLite
    BENCH_DB_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/turn_cpu.py
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from typing import Any

from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.demo import load_demo
from app.main import create_app

TOKEN = "bench-twilio-token"
BASE = "http://127.0.0.1:18100"
TURNS = int(os.environ.get("BENCH_TURNS", 200))


def main() -> None:
    url = os.environ.get("BENCH_DB_URL") or f"sqlite:///{tempfile.mkdtemp()}/turn.db"
    settings = Settings(
        database_url=url,
        twilio_auth_token=TOKEN,
        public_base_url=BASE,
        rate_limit_webhook="1000000/minute",
        audit_seal_interval_seconds=0,
    )
    engine = make_engine(settings)
    upgrade_to_head(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        line = load_demo(session).dedicated_line
    app = create_app(settings, session_factory=factory)

    def post(client: TestClient, path: str, form: dict[str, str]) -> Any:
        signature = RequestValidator(TOKEN).compute_signature(BASE + path, form)
        answer = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200 and "went wrong" not in answer.text, answer.text
        return answer

    with TestClient(app, base_url=BASE) as client:
        for label, turn in (("SMS turn", _sms), ("Gather turn", _gather)):
            for _ in range(20):  # warm caches (compiled statements, engine tables)
                turn(client, post, line)
            spent = sum(turn(client, post, line) for _ in range(TURNS))
            print(f"{label:12s} {engine.dialect.name:10s} CPU {spent / TURNS * 1000:6.2f} ms/turn")


def _sms(client: TestClient, post: Any, line: str) -> float:
    """The CPU seconds of one SMS turn from a new caller."""
    run = secrets.randbelow(10**12)
    form = {
        "MessageSid": f"SM{run:032d}",
        "From": f"+1415{run % 10_000_000:07d}",
        "To": line,
        "Body": "hi, can I book a consultation tomorrow at 3pm?",
    }
    start = time.process_time()
    post(client, "/webhooks/twilio/sms/inbound", form)
    return time.process_time() - start


def _gather(client: TestClient, post: Any, line: str) -> float:
    """The CPU seconds of a call's first Gather turn (the call is answered first)."""
    run = secrets.randbelow(10**12)
    call = {"CallSid": f"CA{run:032d}", "From": f"+1415{run % 10_000_000:07d}", "To": line}
    post(client, "/webhooks/twilio/voice/inbound", call)
    speech = {**call, "SpeechResult": "what times do you have tomorrow afternoon"}
    start = time.process_time()
    post(client, "/webhooks/twilio/voice/gather?turn=1", speech)
    return time.process_time() - start


if __name__ == "__main__":
    main()
