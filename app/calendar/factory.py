"""The calendar factory every process uses (app, job workers, the sync CLI): Microsoft
365 for agents connected to it, Google for theirs, the built-in calendar otherwise."""

from __future__ import annotations

from app.calendar.after_commit import Dispatch, run_now
from app.calendar.google import GoogleCalendarFactory
from app.calendar.microsoft import MicrosoftCalendarFactory
from app.calendar.ms_oauth import MicrosoftIdentity, configured
from app.calendar.oauth import client_config
from app.clock import Clock
from app.config import Settings
from app.notify import SmsSender
from app.security.vault import TokenVault, build_vault


def vault_for(settings: Settings) -> TokenVault | None:
    """The token vault, required when either OAuth client is configured."""
    needed = client_config(settings) is not None or configured(settings)
    return build_vault(settings, needed=needed)


def build_calendar_factory(
    settings: Settings,
    vault: TokenVault | None,
    sms_sender: SmsSender,
    *,
    clock: Clock,
    identity: MicrosoftIdentity | None = None,
    writes: Dispatch = run_now,
) -> MicrosoftCalendarFactory:
    if identity is None and configured(settings):
        identity = MicrosoftIdentity(settings)
    google = GoogleCalendarFactory(
        settings, client_config(settings), vault, sms_sender, clock=clock, writes=writes
    )
    return MicrosoftCalendarFactory(
        settings, identity, vault, sms_sender, clock=clock, fallback=google, writes=writes
    )
