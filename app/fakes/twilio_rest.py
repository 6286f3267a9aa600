"""A local fake of Twilio's REST API: Messages.json and Calls.json.

It records what it was asked to send, checks the account's basic auth, answers like
Twilio (201 with a sid, or Twilio's error JSON), and injects faults on demand: a queue
of 429 / 500 / 503 answers, timeouts (no answer until the client gives up) and
"accepted but the answer was lost" (the message is recorded, the client times out).
Run it with `python -m app.fakes.twilio_rest --port 18510` or start it in a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

Fault = str  # "429" | "500" | "503" | "timeout" | "lost"


@dataclass
class Recorded:
    kind: str  # "message" | "call"
    sid: str
    form: dict[str, list[str]]
    at: float

    def get(self, key: str) -> str:
        values = self.form.get(key) or [""]
        return values[0]


@dataclass
class FakeTwilioState:
    account_sid: str
    auth_token: str
    latency: float = 0.0
    hang_seconds: float = 5.0
    faults: deque[Fault] = field(default_factory=deque)
    records: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def record(self, kind: str, form: dict[str, list[str]]) -> Recorded:
        prefix = "SM" if kind == "message" else "CA"
        item = Recorded(kind, prefix + secrets.token_hex(16), form, time.time())
        with self.lock:
            self.records.append(item)
        return item

    def messages(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.records if r.kind == "message"]

    def calls(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.records if r.kind == "call"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        if not self._authorised(state):
            self._json(401, {"code": 20003, "message": "Authenticate", "status": 401})
            return
        kind = self._kind(state)
        if kind is None:
            self._json(404, {"code": 20404, "message": "Not found", "status": 404})
            return
        if state.latency:
            time.sleep(state.latency)
        fault = state.next_fault()
        if fault in ("429", "500", "503"):
            status = int(fault)
            self._json(
                status,
                {
                    "code": 20429 if status == 429 else 20500,
                    "status": status,
                    "message": "injected fault",
                },
            )
            return
        if fault == "lost":
            state.record(kind, form)
        if fault in ("timeout", "lost"):
            time.sleep(state.hang_seconds)
            self.close_connection = True
            return
        if "To" not in form or not form["To"][0].startswith("+"):
            self._json(400, {"code": 21211, "status": 400, "message": "Invalid 'To'"})
            return
        item = state.record(kind, form)
        self._json(
            201,
            {
                "sid": item.sid,
                "status": "queued",
                "to": item.get("To"),
                "from": item.get("From"),
                "body": item.get("Body"),
            },
        )

    def _authorised(self, state: FakeTwilioState) -> bool:
        expected = base64.b64encode(f"{state.account_sid}:{state.auth_token}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {expected}"

    def _kind(self, state: FakeTwilioState) -> str | None:
        base = f"/2010-04-01/Accounts/{state.account_sid}/"
        if self.path == base + "Messages.json":
            return "message"
        if self.path == base + "Calls.json":
            return "call"
        return None

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeTwilioState


class FakeTwilio:
    """Start on 127.0.0.1 (port 0: any free port); `.url` is the API base to configure."""

    def __init__(self, account_sid: str, auth_token: str, port: int = 0) -> None:
        self.state = FakeTwilioState(account_sid, auth_token)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTwilio:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=18510)
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="fake-token")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeTwilio(args.account_sid, args.auth_token, args.port)
    fake.state.latency = args.latency_ms / 1000
    print(fake.url, flush=True)
    fake._server.serve_forever()


if __name__ == "__main__":
    main()
