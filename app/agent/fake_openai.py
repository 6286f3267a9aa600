"""A local OpenAI-compatible server (Chat Completions with tools) for tests, the scenario
runner, benchmarks and local trials: `python -m app fake-openai --port 18401`.

Three modes:
  scripted  answers from app/agent/fake_model.py: deterministic, offline;
  replay    answers from a JSONL recording, matched by the request's conversation;
            a request with no recording gets 404 (the engine then falls back, visibly);
  record    forwards to a real endpoint (--upstream, with the caller's own
            Authorization header) and appends every exchange to the JSONL file.
Point the engine at it with OPENAI_BASE_URL=http://127.0.0.1:PORT/v1.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from openai import OpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.agent import fake_model

Answerer = Callable[[dict[str, Any], Request], JSONResponse]


def request_key(body: dict[str, Any]) -> str:
    """What identifies a request for replay: the conversation and the tool names (not
    sampling settings, which a recording run may vary)."""
    messages = [
        {k: m.get(k) for k in ("role", "content", "tool_calls", "tool_call_id")}
        for m in body.get("messages") or []
    ]
    tools = sorted(t.get("function", {}).get("name", "") for t in body.get("tools") or [])
    canonical = json.dumps({"messages": messages, "tools": tools}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def completion_body(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    prompt_chars = len(json.dumps(body.get("messages") or []))
    reply_chars = len(json.dumps(message))
    return {
        "id": "chatcmpl-fake-" + request_key(body)[:12],
        "object": "chat.completion",
        "created": 0,
        "model": str(body.get("model", "fake")),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_chars // 4,
            "completion_tokens": reply_chars // 4,
            "total_tokens": (prompt_chars + reply_chars) // 4,
        },
    }


def scripted(body: dict[str, Any], _request: Request) -> JSONResponse:
    return JSONResponse(completion_body(body, fake_model.answer(body)))


class Replay:
    def __init__(self, path: Path) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                self.answers[entry["key"]] = entry["response"]

    def __call__(self, body: dict[str, Any], _request: Request) -> JSONResponse:
        response = self.answers.get(request_key(body))
        if response is None:
            error = {"message": "no recorded response for this request", "type": "not_found"}
            return JSONResponse({"error": error}, status_code=404)
        return JSONResponse(response)


class Recorder:
    def __init__(self, path: Path, upstream: str, timeout: float = 30.0) -> None:
        self.path = path
        self.upstream = upstream.rstrip("/")
        self.http = httpx.Client(timeout=timeout)
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any], request: Request) -> JSONResponse:
        headers = {"Content-Type": "application/json"}
        if "authorization" in request.headers:
            headers["Authorization"] = request.headers["authorization"]
        if "api-key" in request.headers:  # Azure OpenAI's header
            headers["api-key"] = request.headers["api-key"]
        upstream = self.http.post(f"{self.upstream}/chat/completions", json=body, headers=headers)
        if upstream.status_code == 200:
            entry = {"key": request_key(body), "request": body, "response": upstream.json()}
            with self.lock, self.path.open("a") as out:
                out.write(json.dumps(entry) + "\n")
        return JSONResponse(upstream.json(), status_code=upstream.status_code)


def create_app(answer: Answerer = scripted) -> Starlette:
    async def chat_completions(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "body is not JSON"}}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return JSONResponse({"error": {"message": "messages are required"}}, status_code=400)
        return answer(body, request)

    async def models(_request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models),
        ]
    )


def in_process_client(answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> OpenAI:
    """An OpenAI client whose requests the scripted model answers in this process (an
    httpx transport, no port): for the scenario runner in CI and quick trials."""
    policy = answer or fake_model.answer

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json=completion_body(body, policy(body)))

    http = httpx.Client(transport=httpx.MockTransport(handle))
    return OpenAI(
        api_key="local",
        base_url="http://fake-openai.local/v1",
        http_client=http,  # type: ignore[arg-type]  # openai 3 takes an httpx 0.x client too (openai/_httpx2.py)
    )


@contextmanager
def running(answer: Answerer = scripted, port: int = 18401) -> Iterator[str]:
    """The server on 127.0.0.1:port in a thread, for tests and benchmarks; its base URL."""
    import uvicorn

    config = uvicorn.Config(create_app(answer), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"fake OpenAI server did not start on port {port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(5)


def fake_openai(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 18401,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    replay: Annotated[Path | None, typer.Option(help="Answer from this JSONL recording")] = None,
    record: Annotated[Path | None, typer.Option(help="Append exchanges to this JSONL")] = None,
    upstream: Annotated[str | None, typer.Option(help="Real endpoint to record from")] = None,
) -> None:
    """Run a local OpenAI-compatible server (scripted model, replay or record)."""
    import uvicorn

    answer: Answerer = scripted
    if replay is not None:
        answer = Replay(replay)
    elif record is not None:
        if not upstream:
            raise typer.BadParameter("--record needs --upstream (e.g. https://api.openai.com/v1)")
        answer = Recorder(record, upstream)
    typer.echo(f"OPENAI_BASE_URL=http://{host}:{port}/v1")
    uvicorn.run(create_app(answer), host=host, port=port, log_level="warning")
