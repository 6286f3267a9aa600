"""Operator CLI: `python -m app <command>`.

Each room may add its own command group (a typer.Typer in its own module), registered
at the bottom of this file, so this file stays a table of contents.
"""

from __future__ import annotations

import os
import secrets
import sys
import xml.etree.ElementTree as ET
from enum import StrEnum
from typing import Annotated

import httpx
import typer
from twilio.request_validator import RequestValidator

from app.config import Settings, get_settings
from app.logs import logging_config
from app.security.audit_cli import audit_cli

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Scheduling agent")
cli.add_typer(audit_cli, name="audit")


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


HostOption = Annotated[str, typer.Option(help="Interface to listen on")]
PortOption = Annotated[int, typer.Option(help="Port to listen on")]


def _migrate(settings: Settings) -> None:
    from app.db import make_engine, upgrade_to_head

    settings_path_ready(settings)
    engine = make_engine(settings)
    upgrade_to_head(engine)
    engine.dispose()


def settings_path_ready(settings: Settings) -> None:
    """The embedded SQLite file lives under data/; make sure the folder exists."""
    if settings.is_sqlite and ":///" in settings.database_url:
        from pathlib import Path

        path = settings.database_url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


@cli.command()
def migrate() -> None:
    """Apply database migrations up to the newest."""
    _migrate(get_settings())
    typer.echo("database is up to date")


@cli.command()
def outbox(
    last: Annotated[int, typer.Option(help="How many of the newest texts")] = 10,
) -> None:
    """Print the texts development could not send (no Twilio account), newest last."""
    settings = get_settings()
    if settings.environment != "development":
        typer.echo("the outbox exists only in development", err=True)
        raise typer.Exit(2)
    path = settings.dev_outbox_file
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines[-last:] if last > 0 else []:
        typer.echo(line)
    if not lines:
        typer.echo("no unsent texts yet")


@cli.command()
def demo() -> None:
    """Load the demo user, agent and phone numbers (idempotent) and print how to reach them."""
    settings = get_settings()
    _migrate(settings)
    _print_demo(settings)


def _print_demo(settings: Settings) -> None:
    from app.db import make_engine, make_session_factory
    from app.demo import load_demo

    engine = make_engine(settings)
    with make_session_factory(engine)() as session:
        data = load_demo(session)
    engine.dispose()
    typer.echo(f"demo agent {data.agent_id} (America/Los_Angeles, Mon-Sat)")
    typer.echo(f"  shared agent number: {settings.agent_number}")
    typer.echo(f"  demo caller number:  {data.caller}  (routes to the demo agent)")
    typer.echo(f"  dedicated line:      {data.dedicated_line}  (any caller reaches the agent)")


@cli.command()
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (share the port)")] = 1,
    migrate: Annotated[
        bool, typer.Option(help="Apply migrations first (--no-migrate: a release step does)")
    ] = True,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(help="Default: LOG_LEVEL", case_sensitive=False),
    ] = None,
) -> None:
    """Serve the API (migrations first, unless --no-migrate)."""
    import uvicorn

    from app.startup import preflight

    settings = get_settings()
    if log_level is not None:
        settings = settings.model_copy(update={"log_level": log_level.value.upper()})
        # Workers are new processes that read their settings from the environment.
        os.environ["LOG_LEVEL"] = settings.log_level
    if migrate:
        _migrate(settings)
    preflight(settings)
    if workers > 1:
        _share_metrics_between_workers()
    uvicorn.run(
        "app.main:create_default_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # app/access_log.py logs requests, with secrets redacted
        # Media streams carry 20 ms audio frames: deflating each costs CPU for nothing.
        ws_per_message_deflate=False,
        # What "auto" picks today, named: of uvicorn's implementations installed, the
        # cheapest per message measured (~15% below the deprecated legacy "websockets").
        ws="websockets-sansio",
        log_config=logging_config(settings.log_level, settings.log_json),
    )


def _share_metrics_between_workers() -> None:
    """Each worker writes its samples under one folder; /metrics in any serves the sum.
    Set before the workers import prometheus_client (app.metrics reads it there)."""
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sched-metrics-")


@cli.command()
def up(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Migrate, load the demo data and serve: the one command to try it."""
    from app.startup import preflight

    settings = get_settings()
    _migrate(settings)
    preflight(settings)
    _print_demo(settings)
    print_demo_link(settings)
    typer.echo(f"\nserving on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    typer.echo("in another terminal:  .venv/bin/python -m app sms")
    import uvicorn

    uvicorn.run(
        "app.main:create_default_app",
        factory=True,
        host=host,
        port=port,
        access_log=False,  # app/access_log.py logs requests, with secrets redacted
        # Media streams carry 20 ms audio frames: deflating each costs CPU for nothing.
        ws_per_message_deflate=False,
        # What "auto" picks today, named: of uvicorn's implementations installed, the
        # cheapest per message measured (~15% below the deprecated legacy "websockets").
        ws="websockets-sansio",
        log_config=logging_config(settings.log_level, settings.log_json),
    )


@cli.command()
def sms(
    url: Annotated[str, typer.Option(help="Where the server listens")] = "http://127.0.0.1:8000",
    sender: Annotated[str, typer.Option("--from", help="Caller number")] = "+14155550123",
    to: Annotated[str | None, typer.Option(help="Agent number (default AGENT_NUMBER)")] = None,
) -> None:
    """Text the agent as a caller: signed Twilio webhooks to a running server.

    Interactive on a terminal; otherwise one message per line on standard input.
    """
    settings = get_settings()
    simulator = SmsSimulator(settings, url, sender, to or settings.agent_number)
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo(f"texting {simulator.to} as {sender}; Ctrl-D to quit")
    with httpx.Client(timeout=20) as http:
        while True:
            if interactive:
                typer.echo("you> ", nl=False)
            line = sys.stdin.readline()
            if not line:
                break
            if not line.strip():
                continue
            if not interactive:
                typer.echo(f"you> {line.strip()}")
            for text in simulator.send(http, line.strip()):
                typer.echo(f"agent> {text}")


class SmsSimulator:
    """Builds the form Twilio posts for an inbound SMS and signs it with the auth token,
    over the PUBLIC_BASE_URL the server checks signatures against."""

    path = "/webhooks/twilio/sms/inbound"

    def __init__(self, settings: Settings, url: str, sender: str, to: str) -> None:
        self.url = url.rstrip("/")
        self.public_url = settings.public_base_url + self.path
        self.validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
        self.sender = sender
        self.to = to

    def form(self, body: str) -> dict[str, str]:
        sid = "SM" + secrets.token_hex(16)
        return {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.sender,
            "To": self.to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }

    def send(self, http: httpx.Client, body: str) -> list[str]:
        form = self.form(body)
        signature = self.validator.compute_signature(self.public_url, form)
        response = http.post(
            self.url + self.path, data=form, headers={"X-Twilio-Signature": signature}
        )
        if response.status_code != 200:
            return [f"(HTTP {response.status_code}: {response.text[:200]})"]
        return [m.text or "" for m in ET.fromstring(response.text).iter("Message")]


# --- calendar connections and the token vault (their own rooms) -------------------------
from app.calendar.cli import calendar_cli  # noqa: E402
from app.security.keys_cli import keys_cli  # noqa: E402

cli.add_typer(calendar_cli, name="calendar")
cli.add_typer(keys_cli, name="keys")


# --- admin API keys (app/admin) ---------------------------------------------------------
from app.admin.cli import apikeys_cli  # noqa: E402

cli.add_typer(apikeys_cli, name="apikeys")

from app.phone_sim import call, vapi_cli  # noqa: E402

# A command, not a group: `call --help` shows its options, not a COMMAND it has none of.
cli.command(
    "call",
    help="Phone the agent (signed Twilio webhooks to a running server): each typed line is "
    "what you say, an empty line is silence, digits answer a PIN prompt. Prints what the "
    "caller would hear.",
)(call)
cli.add_typer(vapi_cli, name="vapi")

# --- a local OpenAI-compatible server for the LLM engine (app/agent) --------------------
from app.agent.fake_openai import fake_openai  # noqa: E402

cli.command("fake-openai")(fake_openai)

# --- owner dashboard (app/dashboard) ----------------------------------------------------
from app.dashboard.cli import cli as dashboard_cli  # noqa: E402
from app.dashboard.cli import print_demo_link  # noqa: E402

cli.add_typer(dashboard_cli, name="dashboard")

# --- conversation scenarios (app/scenarios) ---------------------------------------------
from app.scenarios.cli import scenarios_cli  # noqa: E402

cli.add_typer(scenarios_cli, name="scenarios")

# --- streamed calls (app/voice) ----------------------------------------------------------
from app.voice.cli import voice_cli  # noqa: E402

cli.add_typer(voice_cli, name="voice")

# --- background jobs: notifications, reminders, calendar sync (app/jobs) ---------------
from app.jobs.cli import worker  # noqa: E402

cli.command()(worker)
