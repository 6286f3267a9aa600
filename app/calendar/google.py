"""Google Calendar backend: free/busy from Google, bookings as real Google events.

Every call has a time budget (GOOGLE_REQUEST_BUDGET_SECONDS, shared by all calls one
webhook request makes) so a slow Google never outlasts Twilio's or VAPI's patience.
Rate limits (429, 403 rate-limit reasons), 5xx and timeouts are retried with short
backoff inside that budget; whatever still fails becomes a CalendarError, which the
tools turn into a pending sync. Inserts use an event id derived from the booking's
idempotency key, so a retried insert is a 409 (the event is already there), never a
duplicate. A revoked or expired grant (invalid_grant) is final: the connection is marked
needs_reconsent and the owner gets a fresh connect link by SMS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.calendar.after_commit import Dispatch, run_now
from app.calendar.availability import Interval
from app.calendar.backend import CalendarBackend, CalendarError
from app.calendar.changes import Channel, EventChange, SyncExpired
from app.calendar.local import LocalCalendar
from app.calendar.oauth import SCOPES, START_PATH
from app.calendar.remote import (
    UNAVAILABLE_MESSAGE,
    FreeBusyCache,
    RemoteCalendar,
    event_text,
)
from app.clock import Clock
from app.config import Settings
from app.models import Appointment, CalendarConnection
from app.notify import SmsSender
from app.security.vault import TokenVault, VaultError
from app.turn_rows import AgentLike

log = logging.getLogger(__name__)

RECONSENT_MESSAGE = (
    "I can't reach the calendar right now: its Google connection needs to be renewed. "
    "The owner has been sent a link to reconnect; please try again later."
)
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
_BASE32HEX = str.maketrans("", "", "=")

HttpFactory = Callable[[float], Any]


def event_id_for(agent_id: str, idempotency_key: str) -> str:
    """Deterministic Google event id: base32hex (a-v, 0-9), 5-1024 characters.

    The same booking always maps to the same id, so an insert retried after a lost
    response is refused with 409 instead of creating a second event.
    """
    digest = hashlib.sha256(f"{agent_id}\x00{idempotency_key}".encode()).digest()
    return base64.b32hexencode(digest).decode().translate(_BASE32HEX).lower()


@dataclass
class _AccessToken:
    token: str | None
    expiry: datetime | None


@dataclass(frozen=True)
class GoogleOptions:
    client_id: str
    client_secret: str
    token_uri: str
    api_endpoint: str | None
    send_updates: str
    http_timeout: float
    budget: float
    max_retries: int = 4
    backoff: float = 0.1

    @classmethod
    def from_settings(cls, settings: Settings, config: dict[str, Any]) -> GoogleOptions:
        web = config["web"]
        return cls(
            client_id=web["client_id"],
            client_secret=web["client_secret"],
            token_uri=web.get("token_uri", "https://oauth2.googleapis.com/token"),
            api_endpoint=settings.google_calendar_api_endpoint,
            send_updates=settings.google_send_updates,
            http_timeout=settings.google_http_timeout_seconds,
            budget=settings.google_request_budget_seconds,
        )


class GoogleCalendarFactory:
    """Picks each agent's backend: Google for an agent with a Google connection,
    the built-in calendar otherwise. Holds what outlives one request: the API client
    (built once from the static discovery document), HTTP connections per thread,
    access tokens (memory only) and the free/busy cache."""

    def __init__(
        self,
        settings: Settings,
        config: dict[str, Any] | None,
        vault: TokenVault | None,
        sms_sender: SmsSender,
        *,
        clock: Clock,
        http_factory: HttpFactory | None = None,
        sleep: Callable[[float], None] = time.sleep,
        writes: Dispatch = run_now,
    ) -> None:
        self.settings = settings
        self.writes = writes  # how post-commit event writes run (app/calendar/after_commit.py)
        self.options = GoogleOptions.from_settings(settings, config) if config else None
        self.vault = vault
        self.sms_sender = sms_sender
        self.clock = clock
        self.sleep = sleep
        self.http_factory = http_factory or (lambda timeout: httplib2.Http(timeout=timeout))
        self.cache = FreeBusyCache(
            settings.google_freebusy_cache_seconds,
            keep=settings.google_freebusy_stale_seconds,
        )
        self.stale_seconds = settings.google_freebusy_stale_seconds
        self._tokens: dict[str, _AccessToken] = {}
        self._local = threading.local()
        self._service: Any = None
        self._events: Any = None
        self._freebusy: Any = None

    @property
    def enabled(self) -> bool:
        return self.options is not None and self.vault is not None

    @property
    def external_calendars(self) -> bool:
        """Whether any agent can get Google (otherwise all get the built-in calendar)."""
        return self.enabled

    def __call__(self, session: Session, agent: AgentLike) -> CalendarBackend:
        if not self.enabled or agent.calendar_provider != "google":
            return LocalCalendar(session)
        connection = session.scalar(
            select(CalendarConnection).where(
                CalendarConnection.agent_id == agent.id,
                CalendarConnection.provider == "google",
                CalendarConnection.status.in_(("active", "needs_reconsent")),
            )
        )
        if connection is None:
            return LocalCalendar(session)
        return GoogleCalendar(self, session, connection)

    # --- shared client parts ---------------------------------------------------------

    def events(self) -> Any:
        """The events resource, built once: building one costs ~15 ms of CPU."""
        if self._events is None:
            self._events = self.service().events()
        return self._events

    def freebusy(self) -> Any:
        if self._freebusy is None:
            self._freebusy = self.service().freebusy()
        return self._freebusy

    def service(self) -> Any:
        if self._service is None:
            assert self.options is not None
            client_options = (
                {"api_endpoint": self.options.api_endpoint} if self.options.api_endpoint else None
            )
            # The http given here is never used: every request executes with the
            # caller's authorised http. Static discovery: no network, no surprises.
            self._service = build(
                "calendar",
                "v3",
                http=httplib2.Http(),
                static_discovery=True,
                cache_discovery=False,
                client_options=client_options,
            )
        return self._service

    def http(self, timeout: float) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self.http_factory(timeout)
        _set_timeout(http, timeout)
        return http

    def access_token(self, connection_id: str) -> _AccessToken:
        return self._tokens.get(connection_id) or _AccessToken(None, None)

    def remember_token(self, connection_id: str, credentials: Credentials) -> None:
        if credentials.token:
            self._tokens[connection_id] = _AccessToken(credentials.token, credentials.expiry)

    def forget_token(self, connection_id: str) -> None:
        self._tokens.pop(connection_id, None)

    def forget_free_busy(self, connection_id: str) -> None:
        self.cache.drop(connection_id)


def _set_timeout(http: Any, timeout: float) -> None:
    """Shrink httplib2's socket timeout to what the budget still allows."""
    if not isinstance(http, httplib2.Http):
        return
    http.timeout = timeout
    for connection in http.connections.values():
        connection.timeout = timeout
        if getattr(connection, "sock", None) is not None:
            connection.sock.settimeout(timeout)


class GoogleCalendar(RemoteCalendar):
    name = "google"
    read_label = "free/busy"

    def __init__(
        self, factory: GoogleCalendarFactory, session: Session, connection: CalendarConnection
    ) -> None:
        assert factory.options is not None
        super().__init__(factory, session, connection, factory.options.budget)
        self.factory = factory
        self.options = factory.options

    # --- CalendarBackend (busy and write_after_commit: RemoteCalendar) ------------------

    def create_event(self, agent: AgentLike, appointment: Appointment) -> str | None:
        event_id = event_id_for(agent.id, appointment.idempotency_key)
        body = self._event_body(agent, appointment) | {"id": event_id}
        try:
            self._call(
                lambda events: events.insert(
                    calendarId=self.calendar_id, body=body, sendUpdates=self.options.send_updates
                ),
                "book",
            )
        except HttpError as exc:
            if exc.status_code != 409:
                raise self._failure(exc, "book") from None
            # Already there: an earlier attempt landed but its answer was lost.
            self._reconcile(event_id, body)
        return event_id

    def update_event(self, agent: AgentLike, appointment: Appointment) -> None:
        event_id = appointment.external_event_id or event_id_for(
            agent.id, appointment.idempotency_key
        )
        body = self._event_body(agent, appointment)
        try:
            self._patch(event_id, body, "move")
        except HttpError as exc:
            if exc.status_code not in (404, 410):
                raise self._failure(exc, "move") from None
            # The event never landed (its insert is still pending): write it now.
            appointment.external_event_id = self.create_event(agent, appointment)

    def delete_event(self, agent: AgentLike, appointment: Appointment) -> None:
        # With no recorded id the insert may still have landed (lost answer): the
        # deterministic id finds it either way.
        event_id = appointment.external_event_id or event_id_for(
            agent.id, appointment.idempotency_key
        )
        try:
            self._call(
                lambda events: events.delete(
                    calendarId=self.calendar_id,
                    eventId=event_id,
                    sendUpdates=self.options.send_updates,
                ),
                "cancel",
            )
        except HttpError as exc:
            if exc.status_code not in (404, 410):  # already gone is what we wanted
                raise self._failure(exc, "cancel") from None

    # --- two-way sync ----------------------------------------------------------------

    def changes(self, sync_token: str | None, since: datetime) -> tuple[list[EventChange], str]:
        """Events changed since the sync token (all events from `since` without one) and
        the next token. An expired token (410) raises SyncExpired: read everything."""
        found: list[EventChange] = []
        page_token: str | None = None
        while True:
            query: dict[str, Any] = {
                "calendarId": self.calendar_id,
                "showDeleted": True,
                "singleEvents": True,
                "maxResults": 250,
            }
            if sync_token:
                query["syncToken"] = sync_token
            else:
                query["timeMin"] = _rfc3339(since)
            if page_token:
                query["pageToken"] = page_token
            try:

                def list_page(events: Any, q: dict[str, Any] = query) -> Any:
                    return events.list(**q)

                page = self._call(list_page, "sync")
            except HttpError as exc:
                if exc.status_code == 410:
                    raise SyncExpired from None
                raise self._failure(exc, "sync") from None
            found += [_google_change(item) for item in page.get("items", [])]
            page_token = page.get("nextPageToken")
            if not page_token:
                return found, str(page.get("nextSyncToken") or "")

    def watch(self, address: str, token: str, seconds: int) -> Channel:
        channel_id = secrets.token_hex(16)
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": token,
            "params": {"ttl": str(seconds)},
        }
        try:
            answer = self._call(
                lambda events: events.watch(calendarId=self.calendar_id, body=body), "watch"
            )
        except HttpError as exc:
            raise self._failure(exc, "watch") from None
        expires = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC)
        return Channel(channel_id, answer.get("resourceId"), expires)

    def stop(self, channel_id: str, resource_id: str | None) -> None:
        body = {"id": channel_id, "resourceId": resource_id}
        try:
            self._call(lambda _: self.factory.service().channels().stop(body=body), "stop")
        except HttpError as exc:
            if exc.status_code != 404:  # already gone is what we wanted
                raise self._failure(exc, "stop") from None

    # --- pieces ----------------------------------------------------------------------

    def read_busy(self, start: datetime, end: datetime) -> list[Interval]:
        body = {
            "timeMin": _rfc3339(start),
            "timeMax": _rfc3339(end),
            "items": [{"id": self.calendar_id}],
        }
        try:
            result = self._call(lambda _: self.factory.freebusy().query(body=body), "read")
        except HttpError as exc:
            raise self._failure(exc, "read") from None
        entry = (result.get("calendars") or {}).get(self.calendar_id) or {}
        # A 200 can still carry per-calendar errors (notFound, rate limits, ...).
        errors = entry.get("errors") or []
        if errors:
            reasons = ", ".join(sorted({str(e.get("reason", "unknown")) for e in errors}))
            log.warning("free/busy for connection %s failed: %s", self.connection_id, reasons)
            raise CalendarError(f"The calendar could not share its free/busy times ({reasons}).")
        return [
            Interval(_parse_time(b["start"]), _parse_time(b["end"])) for b in entry.get("busy", [])
        ]

    def _reconcile(self, event_id: str, body: dict[str, Any]) -> None:
        """After a 409: make the existing event match the booking (a deleted one is
        brought back; Google keeps deleted ids and refuses to reuse them)."""
        try:
            existing = self._call(
                lambda events: events.get(calendarId=self.calendar_id, eventId=event_id), "book"
            )
        except HttpError as exc:
            raise self._failure(exc, "book") from None
        if (
            existing.get("status") == "cancelled"
            or _parse_time(existing.get("start", {}).get("dateTime", "1970-01-01T00:00:00Z"))
            != _parse_time(body["start"]["dateTime"])
            or _parse_time(existing.get("end", {}).get("dateTime", "1970-01-01T00:00:00Z"))
            != _parse_time(body["end"]["dateTime"])
        ):
            try:
                self._patch(event_id, body, "book")
            except HttpError as exc:
                raise self._failure(exc, "book") from None

    def _event_body(self, agent: AgentLike, appointment: Appointment) -> dict[str, Any]:
        summary, description = event_text(agent, appointment)
        return {
            "summary": summary,
            "description": description,
            "start": {"dateTime": _rfc3339(appointment.start_at), "timeZone": agent.timezone},
            "end": {"dateTime": _rfc3339(appointment.end_at), "timeZone": agent.timezone},
            "status": "confirmed",
            "extendedProperties": {
                "private": {"appointmentId": appointment.id, "agentId": agent.id}
            },
        }

    def _credentials(self) -> Credentials:
        if self.status != "active" or self.encrypted_token is None:
            raise CalendarError(RECONSENT_MESSAGE)
        assert self.factory.vault is not None
        try:
            refresh_token = self.factory.vault.decrypt(self.encrypted_token)
        except VaultError:
            log.error("refresh token of connection %s cannot be decrypted", self.connection_id)
            raise CalendarError(UNAVAILABLE_MESSAGE) from None
        cached = self.factory.access_token(self.connection_id)
        return Credentials(  # type: ignore[no-untyped-call]  # google-auth's __init__ is unannotated
            token=cached.token,
            expiry=cached.expiry,
            refresh_token=refresh_token,
            token_uri=self.options.token_uri,
            client_id=self.options.client_id,
            client_secret=self.options.client_secret,
            scopes=list(SCOPES),
        )

    def _patch(self, event_id: str, body: dict[str, Any], what: str) -> Any:
        return self._call(
            lambda events: events.patch(
                calendarId=self.calendar_id,
                eventId=event_id,
                body=body,
                sendUpdates=self.options.send_updates,
            ),
            what,
        )

    def _call(self, make: Callable[[Any], Any], what: str) -> Any:
        """Execute one API request with retries inside the budget.

        Non-retryable HTTP errors are raised as HttpError for the caller to interpret
        (404, 409, 410 mean something); everything else ends as CalendarError.
        """
        credentials = self._credentials()
        attempt = 0
        while True:
            remaining = self.deadline.remaining()
            if remaining <= 0.05:
                raise CalendarError(UNAVAILABLE_MESSAGE)
            timeout = min(self.options.http_timeout, remaining)
            http = AuthorizedHttp(credentials, http=self.factory.http(timeout))
            try:
                return make(self.factory.events()).execute(http=http)
            except HttpError as exc:
                if not _retryable(exc):
                    raise
                problem = f"HTTP {exc.status_code}"
            except RefreshError as exc:
                if _invalid_grant(exc):
                    self._lost_access()
                    raise CalendarError(RECONSENT_MESSAGE) from None
                if not exc.retryable:
                    log.warning("token refresh refused for connection %s", self.connection_id)
                    raise CalendarError(UNAVAILABLE_MESSAGE) from None
                problem = "token refresh failed"
            except (TransportError, httplib2.HttpLib2Error, OSError) as exc:
                problem = type(exc).__name__
            finally:
                self.factory.remember_token(self.connection_id, credentials)
            attempt += 1
            log.info(
                "Google %s attempt %d for connection %s failed (%s)",
                what,
                attempt,
                self.connection_id,
                problem,
            )
            if attempt > self.options.max_retries:
                raise CalendarError(UNAVAILABLE_MESSAGE)
            delay = self.options.backoff * 2 ** (attempt - 1) * (0.5 + random.random())
            if delay >= self.deadline.remaining() - 0.05:
                raise CalendarError(UNAVAILABLE_MESSAGE)
            self.factory.sleep(delay)

    def _failure(self, exc: HttpError, what: str) -> CalendarError:
        log.warning(
            "Google %s failed for connection %s: HTTP %s %s",
            what,
            self.connection_id,
            exc.status_code,
            _reason(exc) or "",
        )
        if exc.status_code in (401, 403):
            return CalendarError(
                "The calendar refused the request; its owner may need to reconnect it."
            )
        return CalendarError(UNAVAILABLE_MESSAGE)

    def _lost_access(self) -> None:
        """invalid_grant: revoked or expired for good."""
        self.factory.forget_token(self.connection_id)
        self.flag_needs_reconsent(
            last_error="Google access was revoked or has expired (invalid_grant)",
            details={},
            reason="Your scheduling agent lost access to your Google Calendar. Reconnect it",
            path=START_PATH,
        )
        log.warning("connection %s needs re-consent (invalid_grant)", self.connection_id)


def _google_change(item: dict[str, Any]) -> EventChange:
    if item.get("status") == "cancelled":
        return EventChange(str(item["id"]), None, None, True)
    start = (item.get("start") or {}).get("dateTime")
    end = (item.get("end") or {}).get("dateTime")
    return EventChange(
        str(item["id"]),
        _parse_time(start) if start else None,
        _parse_time(end) if end else None,
        False,
    )


def _retryable(exc: HttpError) -> bool:
    status = exc.status_code
    if status == 429 or status >= 500:
        return True
    return status == 403 and _reason(exc) in RATE_LIMIT_REASONS


def _reason(exc: HttpError) -> str | None:
    try:
        data = json.loads(exc.content.decode("utf-8"))
        errors = data["error"].get("errors") or []
        return str(errors[0].get("reason")) if errors else data["error"].get("status")
    except (ValueError, KeyError, AttributeError, IndexError, TypeError):
        return None


def _invalid_grant(exc: RefreshError) -> bool:
    for arg in exc.args:
        if isinstance(arg, dict) and arg.get("error") == "invalid_grant":
            return True
    return bool(exc.args) and str(exc.args[0]).startswith("invalid_grant")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)
