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
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.after_commit import Dispatch, after_commit, run_now
from app.calendar.availability import Interval
from app.calendar.backend import CalendarBackend, CalendarError
from app.calendar.changes import Channel, EventChange, SyncExpired
from app.calendar.local import LocalCalendar
from app.calendar.oauth import SCOPES, text_connect_link
from app.calendar.turn_reads import ReadNeeded, turn_reads
from app.clock import Clock
from app.config import Settings
from app.models import Agent, Appointment, CalendarConnection
from app.notify import SmsSender
from app.security import audit
from app.security.vault import TokenVault, VaultError

log = logging.getLogger(__name__)

RECONSENT_MESSAGE = (
    "I can't reach the calendar right now: its Google connection needs to be renewed. "
    "The owner has been sent a link to reconnect; please try again later."
)
UNAVAILABLE_MESSAGE = "The calendar isn't answering right now; please try again in a minute."
CANNOT_CHECK_MESSAGE = (
    "I can't check the calendar right now, so I can't offer or book times yet. "
    "Please try again in a few minutes."
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


class Deadline:
    """The Google time one request may still spend."""

    def __init__(self, seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._seconds = seconds
        self._end: float | None = None

    def remaining(self) -> float:
        if self._end is None:
            self._end = self._monotonic() + self._seconds
        return self._end - self._monotonic()


class FreeBusyCache:
    """Short-lived free/busy answers per (connection, window), so one conversation
    asking about the same day several times costs one Google call."""

    def __init__(self, ttl: float, max_entries: int = 10_000, keep: float = 0.0) -> None:
        self.ttl = ttl
        # Entries stay this long past their ttl as the outage fallback (`covering`).
        self.keep = keep
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[float, list[Interval]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> list[Interval] | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def covering(
        self, connection_id: str, calendar_id: str, start: datetime, end: datetime, age: float
    ) -> list[Interval] | None:
        """Busy times in [start, end) from an answer at most `age` seconds old whose
        window covers it (the fallback when Google does not answer)."""
        oldest = time.monotonic() - age
        with self._lock:
            entries = list(self._entries.items())
        for (conn, cal, s, e), (expires, busy) in entries:
            fetched = expires - self.ttl
            same = (conn, cal) == (connection_id, calendar_id)
            if same and s <= start and e >= end and fetched >= oldest:
                return [b for b in busy if b.start < end and b.end > start]
        return None

    def drop(self, connection_id: str) -> None:
        """Forget every answer about one connection (its calendar just changed)."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k[0] != connection_id}

    def put(self, key: tuple[Any, ...], value: list[Interval]) -> None:
        if self.ttl <= 0 and self.keep <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic() - self.keep
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, value)


class WindowReads:
    """A provider calendar's free/busy answers for one request, or for one turn across
    its attempts (app/calendar/turn_reads.py): each window is asked once; inside a turn's
    write transaction it is never asked but raised as `ReadNeeded`; when the provider
    does not answer, a recent answer covering the window stands in, and failing that the
    agent says plainly that it cannot check the calendar. Shared by Google and Graph."""

    def __init__(
        self,
        session: Session,
        budget: float,
        cache: FreeBusyCache,
        stale_seconds: float,
        connection_id: str,
        calendar_id: str,
    ) -> None:
        self.cache, self.stale_seconds = cache, stale_seconds
        self.connection_id, self.calendar_id = connection_id, calendar_id
        self.reads = turn_reads(session)
        if self.reads is None:
            self.deadline = Deadline(budget)
            self.answers: dict[tuple[Any, ...], list[Interval] | CalendarError] = {}
        else:
            if self.reads.deadline is None:
                self.reads.deadline = Deadline(budget)
            self.deadline = self.reads.deadline
            self.answers = self.reads.answers

    def fetch(
        self, key: tuple[Any, ...], ask: Callable[[], list[Interval]], what: str
    ) -> list[Interval]:
        known = self.answers.get(key)
        if isinstance(known, CalendarError):
            raise known
        if known is not None:
            return known
        if self.reads is not None and self.reads.offline:
            # Inside the turn's write transaction: never call out (see turn_reads).
            if self.reads.exhausted:
                raise CalendarError(CANNOT_CHECK_MESSAGE)
            raise ReadNeeded(what, lambda: self._ask_once(key, ask, what))
        return self._ask_once(key, ask, what)

    def _ask_once(
        self, key: tuple[Any, ...], ask: Callable[[], list[Interval]], what: str
    ) -> list[Interval]:
        try:
            found = ask()
        except CalendarError as exc:
            if str(exc) != UNAVAILABLE_MESSAGE:
                # Access revoked or a calendar error the provider reported: not an outage
                # to ride out; never book against a calendar we cannot see.
                self.answers[key] = exc
                raise
            _, _, start, end = key
            stale = self.cache.covering(
                self.connection_id, self.calendar_id, start, end, self.stale_seconds
            )
            if stale is None:
                refused = CalendarError(CANNOT_CHECK_MESSAGE)
                self.answers[key] = refused
                raise refused from None
            log.warning(
                "%s unavailable for connection %s: using a recent answer",
                what.split(" ")[0],
                self.connection_id,
            )
            found = stale
        else:
            self.cache.put(key, found)
        self.answers[key] = found
        return found


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

    def __call__(self, session: Session, agent: Agent) -> CalendarBackend:
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


class GoogleCalendar:
    name = "google"

    def __init__(
        self, factory: GoogleCalendarFactory, session: Session, connection: CalendarConnection
    ) -> None:
        assert factory.options is not None
        self.factory = factory
        self.options = factory.options
        self.session = session
        self.connection_id = connection.id
        self.calendar_id = connection.calendar_id
        self.status = connection.status
        self.encrypted_token = connection.encrypted_refresh_token
        # A turn run under TurnReads keeps its answers and its budget across attempts
        # (and calendar instances); anything else keeps them for this instance.
        self.windows = WindowReads(
            session,
            self.options.budget,
            factory.cache,
            factory.stale_seconds,
            connection.id,
            connection.calendar_id,
        )
        self.deadline = self.windows.deadline

    # --- CalendarBackend -------------------------------------------------------------

    def busy(
        self, agent: Agent, start: datetime, end: datetime, *, fresh: bool = False
    ) -> list[Interval]:
        key = (self.connection_id, self.calendar_id, start, end)
        google_busy = None if fresh else self.factory.cache.get(key)
        if google_busy is None:
            google_busy = self._fetch(key, start, end)
        return _subtract(google_busy, self._own_events(agent, start, end))

    def _fetch(self, key: tuple[Any, ...], start: datetime, end: datetime) -> list[Interval]:
        """Ask Google once per window in this request (the tools ask before their write
        transaction, then check again inside it: the second answer is this one)."""
        return self.windows.fetch(
            key,
            lambda: self._query_freebusy(start, end),
            f"free/busy {start.isoformat()}..{end.isoformat()}",
        )

    def write_after_commit(self, appointment_id: str) -> None:
        """Write the appointment to Google once the transaction that changed it has
        committed (never inside it); a failure leaves it pending for the sweeper."""
        from app.calendar.sync import sync_one

        factory = sessionmaker(self.session.get_bind(), expire_on_commit=False)
        after_commit(
            self.session,
            lambda: sync_one(factory, self.factory, self.factory.clock, appointment_id),
            self.factory.writes,
        )

    def create_event(self, agent: Agent, appointment: Appointment) -> str | None:
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

    def update_event(self, agent: Agent, appointment: Appointment) -> None:
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

    def delete_event(self, agent: Agent, appointment: Appointment) -> None:
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

    def _query_freebusy(self, start: datetime, end: datetime) -> list[Interval]:
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

    def _own_events(self, agent: Agent, start: datetime, end: datetime) -> list[Interval]:
        return own_events(self.session, agent, start, end)

    def _event_body(self, agent: Agent, appointment: Appointment) -> dict[str, Any]:
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
        """invalid_grant: revoked or expired for good. Flag the connection once and text
        the owner a fresh connect link; bookings wait as pending until they reconnect."""
        self.factory.forget_token(self.connection_id)
        self.status = "needs_reconsent"
        connection = self.session.get(CalendarConnection, self.connection_id)
        if connection is None or connection.status != "active":
            return
        connection.status = "needs_reconsent"
        connection.last_error = "Google access was revoked or has expired (invalid_grant)"
        agent = self.session.get(Agent, connection.agent_id)
        audit.record(
            self.session,
            "calendar.needs_reconsent",
            actor="google",
            subject=connection.agent_id,
            details={"connection_id": connection.id},
        )
        if agent is not None:
            text_connect_link(
                self.session,
                self.factory.sms_sender,
                self.factory.settings,
                agent,
                self.factory.clock(),
                reason="Your scheduling agent lost access to your Google Calendar. Reconnect it",
            )
        self.session.flush()
        log.warning("connection %s needs re-consent (invalid_grant)", self.connection_id)


def own_events(session: Session, agent: Agent, start: datetime, end: datetime) -> list[Interval]:
    """Our bookings as the external calendar sees them; the tools count them from the
    database (with buffers), so the calendar's copy must not block them twice."""
    rows = session.execute(
        select(Appointment.start_at, Appointment.end_at).where(
            Appointment.agent_id == agent.id,
            Appointment.start_at < end,
            Appointment.end_at > start,
            or_(
                Appointment.status == "confirmed",
                and_(Appointment.status == "cancelled", Appointment.sync_status == "pending"),
            ),
        )
    )
    return [Interval(s, e) for s, e in rows]


def event_text(agent: Agent, appointment: Appointment) -> tuple[str, str]:
    """The event's title and description in the owner's calendar (any provider)."""
    kind = next(
        (t for t in agent.appointment_types or [] if t.get("key") == appointment.appointment_type),
        {},
    )
    type_name = str(kind.get("name") or appointment.appointment_type)
    who = appointment.contact_name or appointment.contact_e164 or "caller"
    lines = [f"Booked by your scheduling agent ({appointment.channel})."]
    if appointment.contact_name:
        lines.append(f"Name: {appointment.contact_name}")
    if appointment.contact_e164:
        # The owner's own calendar may hold the full number; logs never do.
        lines.append(f"Phone: {appointment.contact_e164}")
    if appointment.notes:
        lines.append(f"Notes: {appointment.notes}")
    lines.append(f"Appointment id: {appointment.id}")
    return f"{type_name.capitalize()} with {who}", "\n".join(lines)


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


def _subtract(busy: list[Interval], own: list[Interval]) -> list[Interval]:
    if not own:
        return list(busy)
    result: list[Interval] = []
    own = sorted(own)
    for interval in busy:
        pieces = [interval]
        for mine in own:
            if mine.start >= interval.end:
                break
            next_pieces = []
            for piece in pieces:
                if not piece.overlaps(mine):
                    next_pieces.append(piece)
                    continue
                if piece.start < mine.start:
                    next_pieces.append(Interval(piece.start, mine.start))
                if mine.end < piece.end:
                    next_pieces.append(Interval(mine.end, piece.end))
            pieces = next_pieces
        result.extend(pieces)
    return result


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)
