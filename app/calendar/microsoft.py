"""Microsoft 365 calendar backend: free/busy from calendarView, bookings as Outlook events.

Graph is called over httpx, not msgraph-sdk: the four calls we make (calendarView,
events create/patch/delete, plus delta and subscriptions for sync) are plain JSON, and
the SDK is async-only (kiota), pulls in azure-identity and a large generated model
layer, and hides the status codes and Retry-After headers we act on. MSAL
(app/calendar/ms_oauth.py) owns the tokens.

The promises match Google's (app/calendar/google.py): the same time budget per request
(GOOGLE_REQUEST_BUDGET_SECONDS), 429/503 retried after Retry-After when it fits in the
budget, 5xx and timeouts retried with backoff, the same free/busy cache and outage
fallback, the same messages to callers. Creates carry a `transactionId` derived from the
booking's idempotency key, so a create retried after a lost answer returns the event
the first one made instead of a second one. Reads ask Graph for UTC
(`Prefer: outlook.timezone="UTC"`) and writes name the agent's IANA zone, so the
mailbox's own zone (often a Windows name) never shifts a time. `invalid_grant` or
withdrawn consent marks the connection needs_reconsent and texts the owner a fresh link.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.after_commit import Dispatch, after_commit, run_now
from app.calendar.availability import Interval
from app.calendar.backend import (
    CalendarBackend,
    CalendarError,
    CalendarFactory,
    may_be_external,
)
from app.calendar.changes import Channel, EventChange, SyncExpired
from app.calendar.google import event_id_for
from app.calendar.ms_oauth import RECONSENT_ERRORS, START_PATH, MicrosoftIdentity
from app.calendar.remote import UNAVAILABLE_MESSAGE, FreeBusyCache, RemoteCalendar, event_text
from app.clock import Clock
from app.config import Settings
from app.models import Appointment, CalendarConnection
from app.notify import SmsSender
from app.security.vault import TokenVault, VaultError
from app.turn_rows import AgentLike

log = logging.getLogger(__name__)

RECONSENT_MESSAGE = (
    "I can't reach the calendar right now: its Microsoft connection needs to be renewed. "
    "The owner has been sent a link to reconnect; please try again later."
)
PREFER_UTC = 'outlook.timezone="UTC"'
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
FREE = frozenset({"free", "workingElsewhere"})
# Delta queries need a window; sync reads this far ahead of its start.
SYNC_WINDOW = timedelta(days=400)
# Access tokens are renewed this long before they expire.
TOKEN_MARGIN = 120.0


class GraphError(Exception):
    """A Graph answer that is not a success and not worth retrying."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"HTTP {status} {code}")
        self.status = status
        self.code = code


@dataclass
class _Access:
    token: str
    expires: float  # monotonic


class MicrosoftCalendarFactory:
    """Microsoft 365 for agents connected to it; every other agent goes to `fallback`
    (the Google-aware factory). Holds what outlives a request: the HTTP client, access
    tokens (memory only), the newest refresh tokens and the free/busy cache."""

    def __init__(
        self,
        settings: Settings,
        identity: MicrosoftIdentity | None,
        vault: TokenVault | None,
        sms_sender: SmsSender,
        *,
        clock: Clock,
        fallback: CalendarFactory,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        writes: Dispatch = run_now,
    ) -> None:
        self.settings = settings
        self.writes = writes  # how post-commit event writes run (app/calendar/after_commit.py)
        self.identity = identity
        self.vault = vault
        self.sms_sender = sms_sender
        self.clock = clock
        self.fallback = fallback
        self.sleep = sleep
        self.budget = settings.google_request_budget_seconds
        self.http_timeout = settings.google_http_timeout_seconds
        self.cache = FreeBusyCache(
            settings.google_freebusy_cache_seconds, keep=settings.google_freebusy_stale_seconds
        )
        self.stale_seconds = settings.google_freebusy_stale_seconds
        self.max_retries = 4
        self.backoff = 0.1
        verify: Any = True
        if settings.microsoft_ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(settings.microsoft_ca_bundle))
        self.http = httpx.Client(
            base_url=settings.microsoft_graph_base_url.rstrip("/") + "/",
            verify=verify,
            transport=transport,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.identity is not None and self.vault is not None

    @property
    def external_calendars(self) -> bool:
        """Whether any agent can get Microsoft 365, or an external calendar of the
        fallback's."""
        return self.enabled or may_be_external(self.fallback)

    def __call__(self, session: Session, agent: AgentLike) -> CalendarBackend:
        if not self.enabled or agent.calendar_provider != "microsoft":
            return self.fallback(session, agent)
        connection = session.scalar(
            select(CalendarConnection).where(
                CalendarConnection.agent_id == agent.id,
                CalendarConnection.provider == "microsoft",
                CalendarConnection.status.in_(("active", "needs_reconsent")),
            )
        )
        if connection is None:
            return self.fallback(session, agent)
        return MicrosoftCalendar(self, session, connection)

    def close(self) -> None:
        self.http.close()

    def forget_free_busy(self, connection_id: str) -> None:
        self.cache.drop(connection_id)
        forget = getattr(self.fallback, "forget_free_busy", None)
        if forget is not None:
            forget(connection_id)

    # --- tokens (memory) -------------------------------------------------------------

    def cached_access(self, connection_id: str) -> str | None:
        with self._lock:
            access = self._access.get(connection_id)
        if access is None or access.expires - TOKEN_MARGIN <= time.monotonic():
            return None
        return access.token

    def remember(self, connection_id: str, result: dict[str, Any]) -> None:
        expires = time.monotonic() + float(result.get("expires_in") or 300)
        with self._lock:
            self._access[connection_id] = _Access(result["access_token"], expires)
            if result.get("refresh_token"):
                self._refresh[connection_id] = result["refresh_token"]

    def newest_refresh(self, connection_id: str) -> str | None:
        with self._lock:
            return self._refresh.get(connection_id)

    def forget(self, connection_id: str) -> None:
        with self._lock:
            self._access.pop(connection_id, None)
            self._refresh.pop(connection_id, None)

    def drop_access(self, connection_id: str) -> None:
        with self._lock:
            self._access.pop(connection_id, None)


class MicrosoftCalendar(RemoteCalendar):
    name = "microsoft"
    read_label = "calendarView"

    def __init__(
        self, factory: MicrosoftCalendarFactory, session: Session, connection: CalendarConnection
    ) -> None:
        super().__init__(factory, session, connection, factory.budget)
        self.factory = factory

    # --- CalendarBackend (busy and write_after_commit: RemoteCalendar) ------------------

    def create_event(self, agent: AgentLike, appointment: Appointment) -> str | None:
        body = self._event_body(agent, appointment) | {
            "transactionId": event_id_for(agent.id, appointment.idempotency_key)
        }
        created = self._json("POST", "me/calendar/events", body, "book")
        event_id = str(created["id"])
        if (
            _moment(created["start"]) != appointment.start_at
            or _moment(created["end"]) != appointment.end_at
        ):
            # The transactionId found an earlier attempt's event at another time.
            self._json("PATCH", f"me/events/{event_id}", self._times(agent, appointment), "book")
        return event_id

    def update_event(self, agent: AgentLike, appointment: Appointment) -> None:
        if appointment.external_event_id is None:
            # Its create may have landed with the answer lost: the transactionId finds it.
            appointment.external_event_id = self.create_event(agent, appointment)
            return
        try:
            self._json(
                "PATCH",
                f"me/events/{appointment.external_event_id}",
                self._event_body(agent, appointment),
                "move",
            )
        except GraphError as exc:
            if exc.status != 404:
                raise self._failure(exc, "move") from None
            # Deleted in Outlook meanwhile: write it again under a new transaction id.
            body = self._event_body(agent, appointment) | {
                "transactionId": event_id_for(
                    agent.id, f"{appointment.idempotency_key}@{appointment.start_at.timestamp()}"
                )
            }
            appointment.external_event_id = str(
                self._json("POST", "me/calendar/events", body, "move")["id"]
            )

    def delete_event(self, agent: AgentLike, appointment: Appointment) -> None:
        event_id = appointment.external_event_id
        if event_id is None:
            # A create whose answer was lost may still have landed; the transactionId
            # finds it (or makes it, to be deleted at once: nothing is left either way).
            event_id = self.create_event(agent, appointment)
        try:
            self._send("DELETE", f"me/events/{event_id}", None, "cancel")
        except GraphError as exc:
            if exc.status not in (404, 410):  # already gone is what we wanted
                raise self._failure(exc, "cancel") from None

    def mailbox_time_zone(self) -> str:
        """The mailbox's own zone (a Windows or IANA name), for display and checks."""
        return str(self._json("GET", "me/mailboxSettings/timeZone", None, "read")["value"])

    # --- two-way sync ----------------------------------------------------------------

    def changes(self, delta_link: str | None, since: datetime) -> tuple[list[EventChange], str]:
        """Events changed since the delta link (every event in the sync window without
        one) and the next delta link. An expired link (410) raises SyncExpired."""
        path = delta_link or "me/calendarView/delta"
        params: dict[str, str] | None = None
        if delta_link is None:
            until = since + SYNC_WINDOW
            params = {"startDateTime": _iso(since), "endDateTime": _iso(until)}
        found: list[EventChange] = []
        while True:
            try:
                page = self._json("GET", path, None, "sync", params=params)
            except GraphError as exc:
                if exc.status == 410:
                    raise SyncExpired from None
                raise self._failure(exc, "sync") from None
            found += [_graph_change(item) for item in page.get("value", [])]
            if page.get("@odata.deltaLink"):
                return found, str(page["@odata.deltaLink"])
            link = page.get("@odata.nextLink")
            if not link:
                raise CalendarError(UNAVAILABLE_MESSAGE)
            path, params = str(link), None

    def watch(self, address: str, lifecycle: str, client_state: str, seconds: int) -> Channel:
        expires = self.factory.clock() + timedelta(seconds=seconds)
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": address,
            "lifecycleNotificationUrl": lifecycle,
            "resource": "me/events",
            "expirationDateTime": _iso(expires),
            "clientState": client_state,
        }
        try:
            answer = self._json("POST", "subscriptions", body, "watch")
        except GraphError as exc:
            raise self._failure(exc, "watch") from None
        return Channel(str(answer["id"]), None, _parse_iso(answer["expirationDateTime"]))

    def renew(self, subscription_id: str, seconds: int) -> datetime | None:
        """A later expiry for the subscription; None when Graph no longer has it."""
        expires = self.factory.clock() + timedelta(seconds=seconds)
        try:
            answer = self._json(
                "PATCH",
                f"subscriptions/{subscription_id}",
                {"expirationDateTime": _iso(expires)},
                "renew",
            )
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise self._failure(exc, "renew") from None
        return _parse_iso(answer["expirationDateTime"])

    def stop(self, subscription_id: str, resource_id: str | None = None) -> None:
        try:
            self._send("DELETE", f"subscriptions/{subscription_id}", None, "stop")
        except GraphError as exc:
            if exc.status != 404:
                raise self._failure(exc, "stop") from None

    # --- free/busy -------------------------------------------------------------------

    def read_busy(self, start: datetime, end: datetime) -> list[Interval]:
        params: dict[str, str] | None = {
            "startDateTime": _iso(start),
            "endDateTime": _iso(end),
            "$select": "start,end,showAs,isCancelled",
            "$top": "500",
        }
        path = "me/calendarView"
        busy: list[Interval] = []
        while True:
            try:
                page = self._json("GET", path, None, "read", params=params)
            except GraphError as exc:
                raise self._failure(exc, "read") from None
            for event in page.get("value", []):
                if event.get("isCancelled") or event.get("showAs") in FREE:
                    continue
                busy.append(Interval(_moment(event["start"]), _moment(event["end"])))
            link = page.get("@odata.nextLink")
            if not link:
                return sorted(busy)
            path, params = str(link), None

    # --- pieces ----------------------------------------------------------------------

    def _times(self, agent: AgentLike, appointment: Appointment) -> dict[str, Any]:
        return {
            "start": _graph_time(appointment.start_at, agent.timezone),
            "end": _graph_time(appointment.end_at, agent.timezone),
        }

    def _event_body(self, agent: AgentLike, appointment: Appointment) -> dict[str, Any]:
        subject, description = event_text(agent, appointment)
        return {
            "subject": subject,
            "body": {"contentType": "text", "content": description},
            "showAs": "busy",
            **self._times(agent, appointment),
        }

    def _json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        what: str,
        *,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = self._send(method, path, body, what, params=params)
        try:
            data = response.json()
        except ValueError:
            log.warning("Graph %s answered something that is not JSON", what)
            raise CalendarError(UNAVAILABLE_MESSAGE) from None
        return data if isinstance(data, dict) else {}

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        what: str,
        *,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One Graph request with retries inside the budget. Non-retryable errors are
        raised as GraphError (404 means something); the rest end as CalendarError."""
        attempt = 0
        renewed = False
        while True:
            remaining = self.deadline.remaining()
            if remaining <= 0.05:
                raise CalendarError(UNAVAILABLE_MESSAGE)
            token = self._access_token()
            headers = {"Authorization": f"Bearer {token}", "Prefer": PREFER_UTC}
            wait: float | None = None
            try:
                response = self.factory.http.request(
                    method,
                    path,
                    json=body,
                    params=params,
                    headers=headers,
                    timeout=min(self.factory.http_timeout, remaining),
                )
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            else:
                if response.status_code < 400:
                    return response
                if response.status_code == 401 and not renewed:
                    # An access token revoked early: renew it once, at once.
                    renewed = True
                    self.factory.drop_access(self.connection_id)
                    continue
                if response.status_code not in RETRY_STATUSES:
                    raise GraphError(response.status_code, _code(response))
                problem = f"HTTP {response.status_code}"
                wait = _retry_after(response)
            attempt += 1
            log.info(
                "Graph %s attempt %d for connection %s failed (%s)",
                what,
                attempt,
                self.connection_id,
                problem,
            )
            if attempt > self.factory.max_retries:
                raise CalendarError(UNAVAILABLE_MESSAGE)
            delay = wait if wait is not None else self._backoff(attempt)
            if delay >= self.deadline.remaining() - 0.05:
                # Graph asks us to wait longer than the caller can: a pending sync.
                raise CalendarError(UNAVAILABLE_MESSAGE)
            if delay > 0:
                self.factory.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return float(self.factory.backoff * 2 ** (attempt - 1) * (0.5 + random.random()))

    def _access_token(self) -> str:
        cached = self.factory.cached_access(self.connection_id)
        if cached is not None:
            return cached
        if self.status != "active" or self.encrypted_token is None:
            raise CalendarError(RECONSENT_MESSAGE)
        refresh_token = self.factory.newest_refresh(self.connection_id)
        if refresh_token is None:
            assert self.factory.vault is not None
            try:
                refresh_token = self.factory.vault.decrypt(self.encrypted_token)
            except VaultError:
                log.error("refresh token of connection %s cannot be decrypted", self.connection_id)
                raise CalendarError(UNAVAILABLE_MESSAGE) from None
        assert self.factory.identity is not None
        try:
            result = self.factory.identity.refresh(refresh_token)
        except (requests.RequestException, ValueError, OSError) as exc:
            log.warning(
                "token refresh for connection %s failed (%s)",
                self.connection_id,
                type(exc).__name__,
            )
            raise CalendarError(UNAVAILABLE_MESSAGE) from None
        if "error" in result:
            if result.get("error") in RECONSENT_ERRORS:
                self._lost_access(str(result["error"]))
                raise CalendarError(RECONSENT_MESSAGE)
            log.warning("token refresh refused for connection %s", self.connection_id)
            raise CalendarError(UNAVAILABLE_MESSAGE)
        self.factory.remember(self.connection_id, result)
        rotated = result.get("refresh_token")
        if rotated and rotated != refresh_token:
            self._keep_rotated(rotated)
        return str(result["access_token"])

    def _keep_rotated(self, refresh_token: str) -> None:
        """Entra rotates refresh tokens: store the new one once this session's work has
        committed (never inside it), in its own short transaction."""
        assert self.factory.vault is not None
        encrypted = self.factory.vault.encrypt(refresh_token)
        connection_id = self.connection_id
        bind = self.session.get_bind()

        def store() -> None:
            with sessionmaker(bind)() as session:
                session.execute(
                    update(CalendarConnection)
                    .where(
                        CalendarConnection.id == connection_id,
                        CalendarConnection.status == "active",
                    )
                    .values(encrypted_refresh_token=encrypted)
                    .execution_options(synchronize_session=False)
                )
                session.commit()

        after_commit(self.session, store)

    def _failure(self, exc: GraphError, what: str) -> CalendarError:
        log.warning("Graph %s failed for connection %s: %s", what, self.connection_id, exc.args[0])
        if exc.status in (401, 403):
            return CalendarError(
                "The calendar refused the request; its owner may need to reconnect it."
            )
        return CalendarError(UNAVAILABLE_MESSAGE)

    def _lost_access(self, error: str) -> None:
        """Revoked, expired or consent withdrawn."""
        self.factory.forget(self.connection_id)
        self.flag_needs_reconsent(
            last_error=f"Microsoft access was revoked or has expired ({error})",
            details={"error": error},
            reason="Your scheduling agent lost access to your Microsoft 365 calendar. Reconnect it",
            path=START_PATH,
        )
        log.warning("connection %s needs re-consent (%s)", self.connection_id, error)


def _graph_change(item: dict[str, Any]) -> EventChange:
    if "@removed" in item or item.get("isCancelled"):
        return EventChange(str(item["id"]), None, None, True)
    return EventChange(str(item["id"]), _moment(item["start"]), _moment(item["end"]), False)


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _graph_time(moment: datetime, zone: str) -> dict[str, str]:
    from zoneinfo import ZoneInfo

    local = moment.astimezone(ZoneInfo(zone))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": zone}


def _moment(value: dict[str, str]) -> datetime:
    """A Graph dateTimeTimeZone read with Prefer UTC: seven fractional digits, no offset."""
    zone = value.get("timeZone", "UTC")
    naive = datetime.fromisoformat(value["dateTime"][:19])
    if zone in ("UTC", "Etc/UTC", "Coordinated Universal Time"):
        return naive.replace(tzinfo=UTC)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    except (ZoneInfoNotFoundError, ValueError):
        # A Windows zone name: Graph ignored our Prefer header. Never guess a time.
        log.warning("Graph answered in time zone %r instead of UTC", zone)
        raise CalendarError(UNAVAILABLE_MESSAGE) from None
