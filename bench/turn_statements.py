"""The statements of one SMS turn (BENCH_PATH=gather: one Gather turn; BENCH_PATH=vapi:
one VAPI book_appointment tool call), as the database sees them: a profile of round trips.

Runs one full turn (a new caller texting the demo agent's dedicated line) through the
real app in-process and prints every statement, BEGIN and COMMIT with a count, so a
change to the turn's path can be checked statement by statement.

    .venv/bin/python bench/turn_statements.py                       # SQLite
    BENCH_PATH=gather .venv/bin/python bench/turn_statements.py
    BENCH_PATH=vapi .venv/bin/python bench/turn_statements.py
    BENCH_DB_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/turn_statements.py
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, select
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _phone_server import VAPI_SECRET, caller_number, prepare_database
from pydantic import SecretStr

from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.demo import load_demo
from app.main import create_app
from app.models import PhoneNumber

TOKEN = "bench-twilio-token"
BASE = "http://127.0.0.1:18100"


def main() -> None:
    url = os.environ.get("BENCH_DB_URL") or f"sqlite:///{tempfile.mkdtemp()}/turn.db"
    settings = Settings(
        database_url=url,
        twilio_auth_token=TOKEN,
        vapi_secret=SecretStr(VAPI_SECRET),
        public_base_url=BASE,
        rate_limit_webhook="1000/minute",
    )
    engine = make_engine(settings)
    upgrade_to_head(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        demo = load_demo(session)
        bench_line = session.scalar(select(PhoneNumber).where(PhoneNumber.e164 == caller_number(0)))
    if bench_line is None:  # a VAPI caller's line, open round the clock
        prepare_database(url, 1)
    app = create_app(settings, session_factory=factory)
    seen: list[str] = []

    def statement(_c: Any, _cur: Any, sql: str, *_: Any) -> None:
        seen.append(" ".join(sql.split())[: int(os.environ.get("BENCH_WIDTH", 150))])

    event.listen(engine, "before_cursor_execute", statement)
    if engine.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE is a statement
        event.listen(engine, "begin", lambda *_: seen.append("BEGIN"))
    event.listen(engine, "commit", lambda *_: seen.append("COMMIT"))
    gather = os.environ.get("BENCH_PATH") == "gather"
    vapi = os.environ.get("BENCH_PATH") == "vapi"

    def post(client: TestClient, path: str, form: dict[str, str]) -> Any:
        signature = RequestValidator(TOKEN).compute_signature(BASE + path, form)
        return client.post(path, data=form, headers={"X-Twilio-Signature": signature})

    with TestClient(app, base_url=BASE) as client:
        for _ in range(2):  # the first warms caches; the second is printed
            run = secrets.randbelow(10**8)  # a new caller and message on a reused database
            caller = f"+1415{run % 10_000_000:07d}"
            if vapi:  # a new call and slot each time, as bench/turn_cost.py's VAPI path
                seen.clear()
                answer = client.post(
                    "/webhooks/vapi",
                    content=_vapi_booking(run),
                    headers={"X-Vapi-Secret": VAPI_SECRET, "content-type": "application/json"},
                )
                continue
            if gather:  # the call is answered first; its first speech turn is counted
                call = {"CallSid": f"CA{run:032d}", "From": caller, "To": demo.dedicated_line}
                post(client, "/webhooks/twilio/voice/inbound", call)
                seen.clear()
                speech = {**call, "SpeechResult": "what times do you have tomorrow afternoon"}
                answer = post(client, "/webhooks/twilio/voice/gather?turn=1", speech)
                continue
            seen.clear()
            form = {
                "MessageSid": f"SM{run:032d}",
                "From": caller,
                "To": demo.dedicated_line,
                "Body": "hi, can I book a consultation tomorrow at 3pm?",
            }
            answer = post(client, "/webhooks/twilio/sms/inbound", form)
    print(answer.text)
    for number, line in enumerate(seen, 1):
        print(f"{number:3d} {line}")
    ping = "plus a pre-ping per checkout" if engine.pool._pre_ping else "no pre-ping"
    print(f"round trips: {len(seen)} ({engine.dialect.name}; {ping})")


def _vapi_booking(run: int) -> str:
    day = (datetime.now(UTC) + timedelta(days=2 + run % 300)).replace(hour=0, minute=0)
    start = day.replace(second=0, microsecond=0) + timedelta(minutes=45 * (run % 31))
    call = {
        "id": f"toolcall_{run}",
        "type": "function",
        "function": {
            "name": "book_appointment",
            "arguments": json.dumps({"start": start.isoformat()}),
        },
    }
    message = {
        "type": "tool-calls",
        "call": {"id": f"call_{run}", "customer": {"number": caller_number(0)}},
        "customer": {"number": caller_number(0)},
        "toolCallList": [call],
    }
    return json.dumps({"message": message})


if __name__ == "__main__":
    main()
