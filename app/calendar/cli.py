"""`python -m app calendar ...`: connect links and the calendar sync worker."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from app.calendar import sync
from app.calendar.factory import build_calendar_factory, vault_for
from app.calendar.oauth import client_config, connect_url, redirect_uri, text_connect_link
from app.clock import system_clock
from app.config import get_settings
from app.db import make_engine, make_session_factory
from app.models import Agent
from app.notify import build_sender
from app.progress import progress_bar
from app.security.vault import VaultError

calendar_cli = typer.Typer(
    no_args_is_help=True, help="Calendar connections (Google, Microsoft 365) and sync"
)


@calendar_cli.command("link")
def link(
    agent_id: str,
    sms: Annotated[
        bool, typer.Option("--sms", help="Text it to the owner's verified phone(s)")
    ] = False,
) -> None:
    """Print a signed, expiring link that connects AGENT_ID to a Google Calendar."""
    settings = get_settings()
    if client_config(settings) is None:
        typer.echo("No Google OAuth client configured (GOOGLE_CLIENT_ID/SECRET).", err=True)
        raise typer.Exit(2)
    session_factory = make_session_factory(make_engine(settings))
    with session_factory() as session:
        agent = session.get(Agent, agent_id)
        if agent is None:
            typer.echo(f"No agent {agent_id!r}.", err=True)
            raise typer.Exit(1)
        if sms:
            sent = text_connect_link(
                session, build_sender(settings), settings, agent, system_clock()
            )
            session.commit()
            typer.echo(f"Texted the connect link to {sent} verified number(s).")
            return
    typer.echo(connect_url(settings, agent_id, system_clock()))
    typer.echo(f"(Google must list this redirect URI: {redirect_uri(settings)})", err=True)


@calendar_cli.command("sync")
def run_sync(
    loop: Annotated[bool, typer.Option("--loop", help="Keep sweeping (a worker)")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between sweeps with --loop")] = 15.0,
) -> None:
    """Write pending bookings to external calendars (once, or as a worker with --loop)."""
    settings = get_settings()
    session_factory = make_session_factory(make_engine(settings))
    try:
        vault = vault_for(settings)
    except VaultError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # Google and Microsoft 365 rows alike (a Google-only factory would detach the others).
    factory = build_calendar_factory(settings, vault, build_sender(settings), clock=system_clock)
    batch = settings.calendar_sync_batch
    if not loop:
        with progress_bar("syncing calendars") as bar:

            def progress(done: int, total: int) -> None:
                bar.total(total)
                bar.done(done)

            report = sync.sweep_once(
                session_factory, factory, system_clock, batch=batch, progress=progress
            )
        typer.echo(
            f"synced {report.synced}, failed {report.failed}, "
            f"skipped {report.skipped}, detached {report.detached}"
        )
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"calendar sync worker: sweeping every {interval:g} s (Ctrl-C stops)")
    sync.run_loop(session_factory, factory, system_clock, interval=interval, batch=batch, stop=stop)
