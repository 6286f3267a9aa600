"""What the local fakes of calendar providers share (app/fakes/graph.py, and Google's in
tests/calendar/fake_google.py): a threaded HTTP server on 127.0.0.1, a log of requests
and of the time each spent inside the fake, injected latency, and injected faults from
a plan or at a rate. A provider's fake adds its routes and how its faults look.

Fault kinds every fake understands: "timeout" (hold the answer, then drop the
connection), "after500" and "after_timeout" (the request takes effect, its answer is
lost); any other kind is the provider's own (`_fault_answer`).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class FakeService:
    latency: float = 0.0
    # How long a "timeout" fault holds the answer (longer than the client waits).
    hang: float = 0.5
    requests: list[tuple[str, str]] = field(default_factory=list)
    # Seconds each request spent inside the fake (latency included), for benchmarks.
    handled: list[float] = field(default_factory=list)
    fault_plan: list[str] = field(default_factory=list)
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("500",)
    # Which requests injected faults may hit.
    fault_filter: Callable[[str, str], bool] = lambda method, path: True
    seed: int = 7
    # Called with (method, path) as each request arrives (tests probe the database then).
    on_request: Callable[[str, str], None] | None = None

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.random = random.Random(self.seed)
        self._server: ThreadingHTTPServer | None = None

    # --- provider hooks ----------------------------------------------------------------

    def handler(self) -> type[FakeHandler]:
        raise NotImplementedError

    def wrap(self, server: ThreadingHTTPServer) -> None:
        """Change the listening socket before serving (TLS)."""

    scheme = "http"

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, port: int = 0) -> Any:
        fake = self

        class Handler(self.handler()):  # type: ignore[misc]
            service = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.wrap(self._server)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    # --- test controls -------------------------------------------------------------------

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p in self.requests if m == method and fragment in p)

    def next_fault(self, method: str, path: str) -> str | None:
        if not self.fault_filter(method, path):
            return None
        with self.lock:
            if self.fault_plan:
                return self.fault_plan.pop(0) or None
            if self.fault_rate and self.random.random() < self.fault_rate:
                return self.random.choice(self.fault_kinds)
        return None


class FakeHandler(BaseHTTPRequestHandler):
    service: FakeService
    protocol_version = "HTTP/1.1"
    # Keep-alive answers written in pieces meet delayed ACKs (40 ms stalls) otherwise.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- provider hooks ----------------------------------------------------------------

    def route(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        raise NotImplementedError

    def fault_answer(self, fault: str) -> None:
        raise NotImplementedError

    # --- plumbing ------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        began = time.perf_counter()
        try:
            self._answer(method)
        finally:
            self.service.handled.append(time.perf_counter() - began)

    def _answer(self, method: str) -> None:
        service = self.service
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parsed = urlparse(self.path)
        service.requests.append((method, parsed.path))
        if service.on_request is not None:
            service.on_request(method, parsed.path)
        if service.latency:
            time.sleep(service.latency)
        fault = service.next_fault(method, parsed.path)
        if fault == "timeout":
            self._hang()
            return
        if fault is not None and not fault.startswith("after"):
            self.fault_answer(fault)
            return
        status, body = self.route(method, parsed.path, parse_qs(parsed.query), raw)
        if fault == "after500":
            self.fault_answer("500")
        elif fault == "after_timeout":
            self._hang()
        else:
            self.send(status, body)

    def _hang(self) -> None:
        time.sleep(self.service.hang)
        self.close_connection = True

    def send(
        self,
        status: int,
        body: dict[str, Any] | None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self._headers_buffer.append(b"\r\n" + data)  # type: ignore[attr-defined]  # one write
        self.flush_headers()
