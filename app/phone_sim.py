"""Phone simulators for a running server: `call` (Twilio voice) and `vapi` (VAPI server
messages), signed the providers' way, so the whole path runs as it would in production.

    python -m app call --from +14155550123          # type what you would say
    printf 'book a consultation tomorrow at 3\\nyes\\nbye\\n' | python -m app call
    python -m app vapi book --start 2026-11-24T15:00:00
    python -m app vapi --auth hmac run < lines.txt   # "<tool> {json args}" per line
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer
from twilio.request_validator import RequestValidator

from app.config import Settings, get_settings
from app.security.vapi_auth import sign

vapi_cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Simulate VAPI")

UrlOption = Annotated[str, typer.Option(help="Where the server listens")]
FromOption = Annotated[str, typer.Option("--from", help="Caller number")]
ToOption = Annotated[str | None, typer.Option("--to", help="Dialled number (default AGENT_NUMBER)")]


def _lines(prompt: str) -> Any:
    """Typed lines on a terminal, else one line per stdin line (echoed)."""
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            typer.echo(prompt, nl=False)
        line = sys.stdin.readline()
        if not line:
            return
        line = line.rstrip("\n")
        if not interactive:
            typer.echo(f"{prompt}{line}")
        yield line


# --- Twilio voice ----------------------------------------------------------------------------


@dataclass
class Heard:
    says: list[str]
    gather: dict[str, str] | None
    redirect: str | None
    hangup: bool


def parse_twiml(text: str) -> Heard:
    root = ET.fromstring(text)
    gather = root.find("Gather")
    redirect = root.find("Redirect")
    return Heard(
        says=[(say.text or "").strip() for say in root.iter("Say")],
        gather=dict(gather.attrib) if gather is not None else None,
        redirect=(redirect.text or "").strip() if redirect is not None else None,
        hangup=root.find("Hangup") is not None,
    )


@dataclass
class CallSimulator:
    """Posts what Twilio posts during one inbound call, signed with the auth token over
    the PUBLIC_BASE_URL the server checks signatures against."""

    settings: Settings
    url: str
    caller: str
    to: str
    stir_verstat: str | None
    sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    sequence: int = 0
    started: float = field(default_factory=time.monotonic)

    def base(self) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": self.settings.twilio_account_sid or "AC" + "0" * 32,
            "From": self.caller,
            "Caller": self.caller,
            "To": self.to,
            "Called": self.to,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }

    def post(self, http: httpx.Client, public_url: str, params: dict[str, str]) -> Heard:
        validator = RequestValidator(self.settings.twilio_auth_token.get_secret_value())
        signature = validator.compute_signature(public_url, params)
        parts = urlsplit(public_url)
        target = self.url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
        response = http.post(target, data=params, headers={"X-Twilio-Signature": signature})
        if response.status_code != 200:
            return Heard(
                [f"(HTTP {response.status_code}: {response.text[:200]})"], None, None, True
            )
        return parse_twiml(response.text)

    def dial(self, http: httpx.Client) -> Heard:
        params = {**self.base(), "CallStatus": "ringing"}
        if self.stir_verstat:
            params["StirVerstat"] = self.stir_verstat
        return self.post(http, self.public("/webhooks/twilio/voice/inbound"), params)

    def answer(self, http: httpx.Client, gather: dict[str, str], line: str) -> Heard:
        params = {**self.base(), "CallStatus": "in-progress"}
        keyed = line.strip().rstrip("#")
        if "dtmf" in gather.get("input", "") and keyed.isdigit():
            params["Digits"] = keyed
        elif line.strip():
            params.update(SpeechResult=line.strip(), Confidence="0.93")
        return self.post(http, gather["action"], params)

    def follow(self, http: httpx.Client, redirect: str) -> Heard:
        return self.post(http, redirect, {**self.base(), "CallStatus": "in-progress"})

    def hang_up(self, http: httpx.Client) -> None:
        self.sequence += 1
        params = {
            **self.base(),
            "CallStatus": "completed",
            "CallDuration": str(int(time.monotonic() - self.started)),
            "SequenceNumber": str(self.sequence),
            "CallbackSource": "call-progress-events",
        }
        self.post(http, self.public("/webhooks/twilio/voice/status"), params)

    def public(self, path: str) -> str:
        return self.settings.public_base_url + path


def call(
    url: UrlOption = "http://127.0.0.1:8000",
    caller: FromOption = "+14155550123",
    to: ToOption = None,
    stir_verstat: Annotated[
        str,
        typer.Option(
            help="StirVerstat Twilio reports (TN-Validation-Passed-A, -B, -C, "
            "No-TN-Validation, ... or 'none' for absent)"
        ),
    ] = "TN-Validation-Passed-A",
    stream: Annotated[
        bool, typer.Option("--stream", help="Play it as a Twilio Media Stream (Deepgram)")
    ] = False,
) -> None:
    """Phone the agent: each typed line is what you say (an empty line is silence; digits
    answer a PIN prompt as keypresses). Prints what the caller would hear."""
    settings = get_settings()
    simulator = CallSimulator(
        settings,
        url,
        caller,
        to or settings.agent_number,
        None if stir_verstat.lower() == "none" else stir_verstat,
    )
    lines = _lines("you> ")
    with httpx.Client(timeout=20) as http:
        if stream:
            from app.stream_sim import stream_call

            heard = stream_call(simulator, lines, typer.echo)
            if heard is None:
                simulator.hang_up(http)
                return
        else:
            heard = simulator.dial(http)
        while True:
            for text in heard.says:
                typer.echo(f"agent> {text}")
            if heard.redirect:
                heard = simulator.follow(http, heard.redirect)
                continue
            if heard.hangup or heard.gather is None:
                typer.echo("(the agent hung up)")
                break
            line = next(lines, None)
            if line is None:
                typer.echo("(you hung up)")
                break
            heard = simulator.answer(http, heard.gather, line)
        simulator.hang_up(http)


# --- VAPI ----------------------------------------------------------------------------------


@dataclass
class VapiSimulator:
    settings: Settings
    url: str
    caller: str
    to: str
    auth: str
    call_id: str
    secret: str | None

    def headers(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.auth == "hmac":
            secret = self.secret or _secret(self.settings.vapi_hmac_secret, "VAPI_HMAC_SECRET")
            stamp = str(int(time.time()))
            headers.update({"x-timestamp": stamp, "x-signature": sign(secret, stamp, body)})
            return headers
        secret = self.secret or _secret(self.settings.vapi_secret, "VAPI_SECRET")
        header = self.settings.vapi_secret_header
        if self.auth == "authorization" or header.lower() == "authorization":
            headers["Authorization"] = f"Bearer {secret}"
        else:
            headers[header] = secret
        return headers

    def message(self, kind: str, **extra: Any) -> dict[str, Any]:
        customer = {"number": self.caller}
        return {
            "message": {
                "type": kind,
                "timestamp": int(time.time() * 1000),
                "phoneNumber": {"number": self.to},
                "customer": customer,
                "call": {"id": self.call_id, "customer": customer, "type": "inboundPhoneCall"},
                **extra,
            }
        }

    def send(self, http: httpx.Client, payload: dict[str, Any]) -> tuple[int, Any]:
        body = json.dumps(payload).encode()
        response = http.post(
            self.url.rstrip("/") + "/webhooks/vapi", content=body, headers=self.headers(body)
        )
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def tool_call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        call = {
            "id": "call_tool_" + secrets.token_hex(6),
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
        return self.message("tool-calls", toolCallList=[call])


def _secret(value: Any, name: str) -> str:
    if value is None:
        raise typer.BadParameter(f"{name} is not set; pass --secret")
    return str(value.get_secret_value())


def _sim(ctx: typer.Context) -> VapiSimulator:
    sim: VapiSimulator = ctx.obj
    return sim


@vapi_cli.callback()
def vapi(
    ctx: typer.Context,
    url: UrlOption = "http://127.0.0.1:8000",
    caller: FromOption = "+14155550123",
    to: ToOption = None,
    auth: Annotated[
        str, typer.Option(help="Credential: bearer (VAPI_SECRET_HEADER), authorization, hmac")
    ] = "bearer",
    secret: Annotated[
        str | None, typer.Option(help="Secret to use (default VAPI_SECRET/VAPI_HMAC_SECRET)")
    ] = None,
    call_id: Annotated[str | None, typer.Option(help="VAPI call id (default: random)")] = None,
) -> None:
    """Send VAPI server messages to a running server with the chosen credential."""
    if auth not in {"bearer", "authorization", "hmac"}:
        raise typer.BadParameter("--auth is bearer, authorization or hmac")
    settings = get_settings()
    ctx.obj = VapiSimulator(
        settings,
        url,
        caller,
        to or settings.agent_number,
        auth,
        call_id or "call_sim_" + secrets.token_hex(6),
        secret,
    )


def _show(status: int, answer: Any) -> None:
    if status != 200:
        typer.echo(f"(HTTP {status}: {answer})")
        raise typer.Exit(1)
    if isinstance(answer, dict) and "results" in answer:
        for result in answer["results"]:
            if "result" in result:
                typer.echo(f"{result['name']}> {result['result']}")
            else:
                typer.echo(f"{result['name']}> error: {result.get('error')}")
        return
    if isinstance(answer, dict) and "assistant" in answer:
        assistant = answer["assistant"]
        tools = [t["function"]["name"] for t in assistant["model"]["tools"]]
        typer.echo(f"assistant> {assistant['firstMessage']}")
        typer.echo(f"tools> {', '.join(tools)}")
        return
    if isinstance(answer, dict) and "error" in answer:
        typer.echo(f"spoken error> {answer['error']}")
        return
    typer.echo(f"ok> {json.dumps(answer)}")


@vapi_cli.command()
def assistant(ctx: typer.Context) -> None:
    """assistant-request: which assistant would answer this caller."""
    sim = _sim(ctx)
    with httpx.Client(timeout=10) as http:
        _show(*sim.send(http, sim.message("assistant-request")))


@vapi_cli.command()
def tool(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Tool name, e.g. check_availability")],
    args: Annotated[str, typer.Option("--args", help="Arguments as a JSON object")] = "{}",
) -> None:
    """tool-calls with one call of any tool."""
    sim = _sim(ctx)
    with httpx.Client(timeout=20) as http:
        _show(*sim.send(http, sim.tool_call(name, json.loads(args))))


@vapi_cli.command()
def book(
    ctx: typer.Context,
    start: Annotated[str, typer.Option(help="Start, ISO 8601 (agent's zone if no offset)")],
    appointment_type: Annotated[str | None, typer.Option("--type")] = None,
    name: Annotated[str | None, typer.Option(help="The caller's name")] = None,
) -> None:
    """tool-calls: book_appointment."""
    arguments = {"start": start, "appointment_type": appointment_type, "name": name}
    sim = _sim(ctx)
    with httpx.Client(timeout=20) as http:
        payload = sim.tool_call("book_appointment", {k: v for k, v in arguments.items() if v})
        _show(*sim.send(http, payload))


@vapi_cli.command()
def report(
    ctx: typer.Context,
    summary: Annotated[str, typer.Option()] = "Simulated call.",
    ended_reason: Annotated[str, typer.Option()] = "customer-ended-call",
) -> None:
    """end-of-call-report for this call id."""
    sim = _sim(ctx)
    payload = sim.message(
        "end-of-call-report",
        endedReason=ended_reason,
        artifact={"transcript": "", "messages": []},
        analysis={"summary": summary},
    )
    with httpx.Client(timeout=10) as http:
        _show(*sim.send(http, payload))


@vapi_cli.command()
def run(ctx: typer.Context) -> None:
    """A whole call from lines: 'assistant', '<tool> {json args}', 'report' (one call id)."""
    sim = _sim(ctx)
    with httpx.Client(timeout=20) as http:
        for line in _lines("vapi> "):
            words = line.strip().split(maxsplit=1)
            if not words:
                continue
            if words[0] == "assistant":
                payload = sim.message("assistant-request")
            elif words[0] == "report":
                payload = sim.message(
                    "end-of-call-report", endedReason="customer-ended-call", artifact={}
                )
            else:
                arguments = json.loads(words[1]) if len(words) > 1 else {}
                payload = sim.tool_call(words[0], arguments)
            _show(*sim.send(http, payload))
