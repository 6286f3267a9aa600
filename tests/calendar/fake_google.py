"""A small local fake of Google's OAuth token endpoint and Calendar v3 API.

Enough of Google's behaviour for the real google-api-python-client to talk to it over
HTTP (client_options={"api_endpoint": fake.api_endpoint}): freebusy.query, events
insert/get/patch/delete, 409 on a duplicate event id (deleted ids stay taken, as on
Google), 404/410 for missing/deleted events, bearer-token checks, PKCE on the code
exchange, invalid_grant for revoked refresh tokens, and injectable faults (429, 5xx,
403 rate limits, "after" faults that apply the write and lose the answer, timeouts)
and latency. Two-way sync: events.list with sync tokens (410 for an unknown one),
events.watch channels and channels.stop, and owner-side moves and deletions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from app.fakes.http_fake import FakeHandler, FakeService

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
FAULTS = ("429", "500", "503", "403rate", "after500", "timeout", "after_timeout")


@dataclass
class Fault:
    kind: str


@dataclass
class FakeGoogle(FakeService):
    events: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, bool] = field(default_factory=dict)  # token -> revoked
    access_tokens: set[str] = field(default_factory=set)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (challenge, rt)
    calendars: set[str] = field(default_factory=lambda: {"primary"})
    fault_kinds: tuple[str, ...] = ("429", "500", "503", "403rate", "after500")
    fault_filter: Callable[[str, str], bool] = lambda method, path: "/calendar/" in path
    granted_scope: str = (
        "https://www.googleapis.com/auth/calendar.events.owned "
        "https://www.googleapis.com/auth/calendar.freebusy"
    )
    # The fake's "now" (channel expiries), injectable like the app's clock.
    now: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        super().__post_init__()
        self.change_seq = 0
        self.channels: dict[str, dict[str, Any]] = {}

    def handler(self) -> type[FakeHandler]:
        return _Handler

    @property
    def api_endpoint(self) -> str:
        return f"{self.url}/calendar/v3/"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def client_secrets(self, redirect_uri: str) -> dict[str, Any]:
        return {
            "web": {
                "client_id": "fake-client-id.apps.googleusercontent.com",
                "client_secret": "fake-client-secret",
                "auth_uri": f"{self.url}/o/oauth2/auth",
                "token_uri": self.token_uri,
                "redirect_uris": [redirect_uri],
            }
        }

    # --- test controls ---------------------------------------------------------------

    def issue_code(self, code_challenge: str) -> tuple[str, str]:
        """What Google's consent screen would do: a code bound to the PKCE challenge."""
        code = "4/" + secrets.token_urlsafe(24)
        refresh_token = "1//" + secrets.token_urlsafe(32)
        self.codes[code] = (code_challenge, refresh_token)
        return code, refresh_token

    def add_refresh_token(self) -> str:
        token = "1//" + secrets.token_urlsafe(32)
        self.refresh_tokens[token] = False
        return token

    def revoke(self, refresh_token: str) -> None:
        self.refresh_tokens[refresh_token] = True
        self.access_tokens.clear()

    def add_owner_event(self, start: datetime, end: datetime, calendar: str = "primary") -> str:
        event_id = secrets.token_hex(8)
        self.events[(calendar, event_id)] = {
            "id": event_id,
            "status": "confirmed",
            "summary": "Owner's own event",
            "start": {"dateTime": _iso(start)},
            "end": {"dateTime": _iso(end)},
        }
        self.touch(self.events[(calendar, event_id)])
        return event_id

    def owner_move(self, event_id: str, start: datetime, end: datetime) -> None:
        with self.lock:
            event = self.events[("primary", event_id)]
            event["start"] = {"dateTime": _iso(start)}
            event["end"] = {"dateTime": _iso(end)}
            self.touch(event)

    def owner_delete(self, event_id: str) -> None:
        with self.lock:
            event = self.events[("primary", event_id)]
            event["status"] = "cancelled"
            self.touch(event)

    def touch(self, event: dict[str, Any]) -> None:
        self.change_seq += 1
        event["_seq"] = self.change_seq

    def live_events(self, calendar: str = "primary") -> dict[str, dict[str, Any]]:
        return {
            eid: e
            for (cal, eid), e in self.events.items()
            if cal == calendar and e["status"] != "cancelled"
        }


class _Handler(FakeHandler):
    @property
    def google(self) -> FakeGoogle:
        assert isinstance(self.service, FakeGoogle)
        return self.service

    def fault_answer(self, fault: str) -> None:
        if fault == "403rate":
            self.send(403, _error(403, "Rate Limit Exceeded", "rateLimitExceeded"))
        elif fault == "429":
            self.send(429, _error(429, "Too many requests", "rateLimitExceeded"))
        else:
            self.send(int(fault), _error(int(fault), "Backend Error", "backendError"))

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.google.access_tokens

    def route(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        if path == "/token" and method == "POST":
            return self._token(parse_qs(raw.decode()))
        if not path.startswith("/calendar/v3/"):
            return 404, _error(404, "Not Found", "notFound")
        if not self._authorised():
            return 401, _error(401, "Invalid Credentials", "authError")
        rest = path.removeprefix("/calendar/v3/")
        if rest == "freeBusy" and method == "POST":
            return self._freebusy(json.loads(raw or b"{}"))
        if rest == "channels/stop" and method == "POST":
            body = json.loads(raw or b"{}")
            with self.google.lock:
                if self.google.channels.pop(body.get("id"), None) is None:
                    return 404, _error(404, "Channel not found", "notFound")
            return 204, None
        watch = re.fullmatch(r"calendars/([^/]+)/events/watch", rest)
        if watch is not None and method == "POST":
            return self._watch(json.loads(raw or b"{}"))
        match = re.fullmatch(r"calendars/([^/]+)/events(?:/([^/]+))?", rest)
        if match is None:
            return 404, _error(404, "Not Found", "notFound")
        calendar, event_id = unquote(match.group(1)), match.group(2)
        body = json.loads(raw) if raw else {}
        with self.google.lock:
            if event_id is None and method == "POST":
                return self._insert(calendar, body)
            if event_id is None and method == "GET":
                return self._list(calendar, query)
            if event_id is None:
                return 405, _error(405, "Method not allowed", "invalid")
            return self._event(method, calendar, unquote(event_id), body)

    # --- endpoints -------------------------------------------------------------------

    def _token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        google = self.google
        grant = form.get("grant_type", [""])[0]
        if grant == "authorization_code":
            code = form.get("code", [""])[0]
            verifier = form.get("code_verifier", [""])[0]
            issued = google.codes.pop(code, None)
            if issued is None:
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
            challenge, refresh_token = issued
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
                return 400, {"error": "invalid_grant", "error_description": "Bad verifier"}
            google.refresh_tokens[refresh_token] = False
            access = "ya29." + secrets.token_urlsafe(24)
            google.access_tokens.add(access)
            return 200, {
                "access_token": access,
                "expires_in": 3599,
                "refresh_token": refresh_token,
                "scope": google.granted_scope,
                "token_type": "Bearer",
            }
        if grant == "refresh_token":
            token = form.get("refresh_token", [""])[0]
            if google.refresh_tokens.get(token, True):
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                }
            access = "ya29." + secrets.token_urlsafe(24)
            google.access_tokens.add(access)
            return 200, {
                "access_token": access,
                "expires_in": 3599,
                "scope": google.granted_scope,
                "token_type": "Bearer",
            }
        return 400, {"error": "unsupported_grant_type"}

    def _freebusy(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        start, end = _parse(body["timeMin"]), _parse(body["timeMax"])
        calendars: dict[str, Any] = {}
        for item in body.get("items", []):
            calendar = item["id"]
            if calendar not in self.google.calendars:
                calendars[calendar] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
                continue
            spans = sorted(
                (_parse(e["start"]["dateTime"]), _parse(e["end"]["dateTime"]))
                for (cal, _), e in list(self.google.events.items())
                if cal == calendar and e["status"] != "cancelled"
            )
            merged: list[list[datetime]] = []
            for s, e in spans:
                if e <= start or s >= end:
                    continue
                s, e = max(s, start), min(e, end)
                if merged and s <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], e)
                else:
                    merged.append([s, e])
            calendars[calendar] = {"busy": [{"start": _iso(s), "end": _iso(e)} for s, e in merged]}
        return 200, {
            "kind": "calendar#freeBusy",
            "timeMin": body["timeMin"],
            "timeMax": body["timeMax"],
            "calendars": calendars,
        }

    def _list(self, calendar: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        token = (query.get("syncToken") or [None])[0]
        if token is not None and (not token.isdigit() or int(token) > self.google.change_seq):
            return 410, _error(410, "Sync token is no longer valid", "fullSyncRequired")
        since = int(token or 0)
        items = [
            {k: v for k, v in e.items() if not k.startswith("_")}
            for (cal, _), e in self.google.events.items()
            if cal == calendar
            and e.get("_seq", 0) > since
            and (token is not None or e["status"] != "cancelled")
        ]
        return 200, {
            "kind": "calendar#events",
            "items": items,
            "nextSyncToken": str(self.google.change_seq),
        }

    def _watch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not str(body.get("address", "")).startswith("https://"):
            return 400, _error(400, "WebHook callback must be HTTPS", "push.webhookUrlNotHttps")
        ttl = int((body.get("params") or {}).get("ttl", "604800"))
        resource_id = "res-" + secrets.token_hex(8)
        channel = {
            "kind": "api#channel",
            "id": body["id"],
            "resourceId": resource_id,
            "token": body.get("token"),
            "address": body["address"],
            "expiration": str(int((self.google.now() + ttl) * 1000)),
        }
        self.google.channels[body["id"]] = channel
        return 200, channel

    def _insert(self, calendar: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        event_id = body.get("id") or secrets.token_hex(10)
        if not EVENT_ID.match(event_id):
            return 400, _error(400, "Invalid resource id value.", "invalid")
        if (calendar, event_id) in self.google.events:
            return 409, _error(409, "The requested identifier already exists.", "duplicate")
        event = {**body, "id": event_id, "status": body.get("status", "confirmed")}
        self.google.events[(calendar, event_id)] = event
        self.google.touch(event)
        return 200, event

    def _event(
        self, method: str, calendar: str, event_id: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        event = self.google.events.get((calendar, event_id))
        if event is None:
            return 404, _error(404, "Not Found", "notFound")
        if method == "GET":
            return 200, event
        if method == "PATCH":
            event.update({k: v for k, v in body.items() if k != "id"})
            self.google.touch(event)
            return 200, event
        if method == "DELETE":
            if event["status"] == "cancelled":
                return 410, _error(410, "Resource has been deleted", "deleted")
            event["status"] = "cancelled"
            self.google.touch(event)
            return 204, None
        return 405, _error(405, "Method not allowed", "invalid")


def _error(code: int, message: str, reason: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


__all__ = ["FAULTS", "FakeGoogle", "Fault"]
