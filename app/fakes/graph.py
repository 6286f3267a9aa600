"""A local fake of Microsoft's identity platform and Microsoft Graph calendars, over TLS.

MSAL only talks to https authorities, so the fake serves HTTPS with a self-signed
certificate made at start (`ca_file` is what clients trust: MICROSOFT_CA_BUNDLE).

Identity (`/{tenant}/...`): OpenID discovery, the token endpoint (authorization code with
PKCE S256 and an id_token carrying the nonce, refresh tokens that rotate, `invalid_grant`
for revoked ones, `interaction_required` for withdrawn consent).

Graph (`/v1.0/...`): calendarView (UTC when asked with `Prefer: outlook.timezone`),
events create with `transactionId` (a repeated id returns the first event, as Graph
does), get/patch/delete, mailbox time zone, calendarView/delta with delta tokens, and
subscriptions (create, renew, delete). Owner-side edits (`owner_move`, `owner_delete`,
`add_owner_event`) change the calendar as Outlook would and are seen by delta.

Faults: a plan or a rate of 429 / 503 (with Retry-After), 500, "after500" (the write
lands, the answer is lost) and timeouts; latency per request.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from app.fakes.http_fake import FakeHandler, FakeService

CLIENT_ID = "00000000-0000-4000-8000-00000000c11d"
CLIENT_SECRET = "fake-ms-client-secret"
TENANT = "organizations"
# The few Windows zone names the fake understands (Graph accepts IANA names too).
WINDOWS_ZONES = {"UTC": "UTC", "Pacific Standard Time": "America/Los_Angeles"}
_CERT_LOCK = threading.Lock()
_CERT: tuple[str, str] | None = None


def _certificate() -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost (made once per process)."""
    global _CERT
    with _CERT_LOCK:
        if _CERT is not None:
            return _CERT
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-graph")])
        now = datetime.now(UTC)
        san = x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        folder = Path(tempfile.mkdtemp(prefix="fake-graph-"))
        cert_file, key_file = folder / "cert.pem", folder / "key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        _CERT = (str(cert_file), str(key_file))
        return _CERT


@dataclass
class FakeGraph(FakeService):
    retry_after: str = "0"
    mailbox_zone: str = "Pacific Standard Time"
    granted_scope: str = "Calendars.ReadWrite openid"
    rotate_refresh_tokens: bool = True
    # False: answer in the mailbox's zone whatever Prefer asks (a misbehaving proxy).
    honour_prefer: bool = True
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> "ok"|"revoked"|...
    access_tokens: set[str] = field(default_factory=set)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (challenge, nonce)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    fault_kinds: tuple[str, ...] = ("429", "503", "500", "after500")
    fault_filter: Callable[[str, str], bool] = lambda method, path: path.startswith("/v1.0/")
    seed: int = 11
    scheme = "https"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.change_seq = 0

    def handler(self) -> type[FakeHandler]:
        return _Handler

    def wrap(self, server: ThreadingHTTPServer) -> None:
        # MSAL only talks to https authorities.
        cert_file, key_file = _certificate()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)

    @property
    def authority(self) -> str:
        return f"{self.url}/{TENANT}"

    @property
    def graph_base_url(self) -> str:
        return f"{self.url}/v1.0"

    @property
    def ca_file(self) -> str:
        return _certificate()[0]

    # --- test controls ---------------------------------------------------------------

    def issue_code(self, code_challenge: str, nonce: str) -> str:
        """What the consent screen does: a code bound to the PKCE challenge and nonce."""
        code = "M." + secrets.token_urlsafe(24)
        self.codes[code] = (code_challenge, nonce)
        return code

    def add_refresh_token(self) -> str:
        token = "0.rt." + secrets.token_urlsafe(32)
        self.refresh_tokens[token] = "ok"
        return token

    def revoke(self, refresh_token: str, how: str = "revoked") -> None:
        """ "revoked" answers invalid_grant; "consent" answers interaction_required."""
        self.refresh_tokens[refresh_token] = how
        self.access_tokens.clear()

    def revoke_all(self, how: str = "revoked") -> None:
        for token in list(self.refresh_tokens):
            self.revoke(token, how)

    def add_owner_event(self, start: datetime, end: datetime, subject: str = "Own") -> str:
        with self.lock:
            event_id = "AAMk" + secrets.token_hex(12)
            self.events[event_id] = {
                "id": event_id,
                "subject": subject,
                "start_utc": start.astimezone(UTC),
                "end_utc": end.astimezone(UTC),
                "showAs": "busy",
                "isCancelled": False,
                "transactionId": None,
            }
            self._touch(event_id)
            return event_id

    def owner_move(self, event_id: str, start: datetime, end: datetime) -> None:
        with self.lock:
            event = self.events[event_id]
            event["start_utc"], event["end_utc"] = start.astimezone(UTC), end.astimezone(UTC)
            self._touch(event_id)

    def owner_delete(self, event_id: str) -> None:
        with self.lock:
            self.events[event_id]["deleted"] = True
            self._touch(event_id)

    def live_events(self) -> dict[str, dict[str, Any]]:
        return {k: e for k, e in self.events.items() if not e.get("deleted")}

    def _touch(self, event_id: str) -> None:
        self.change_seq += 1
        self.events[event_id]["changed"] = self.change_seq


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _graph_time(moment: datetime, zone: str) -> dict[str, str]:
    local = moment.astimezone(ZoneInfo(WINDOWS_ZONES.get(zone, zone)))
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone}


def _read_time(value: dict[str, str]) -> datetime:
    zone = WINDOWS_ZONES.get(value.get("timeZone", "UTC"), value.get("timeZone", "UTC"))
    moment = datetime.fromisoformat(value["dateTime"][:19])
    return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class _Handler(FakeHandler):
    @property
    def graph(self) -> FakeGraph:
        assert isinstance(self.service, FakeGraph)
        return self.service

    def fault_answer(self, fault: str) -> None:
        headers = {} if fault == "500" else {"Retry-After": self.graph.retry_after}
        code = {"429": "TooManyRequests", "503": "ServiceUnavailable"}.get(fault, "InternalError")
        self.send(int(fault), _error(code, "Injected fault"), headers)

    def route(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        if path.startswith(f"/{TENANT}/"):
            return self._identity(method, path.removeprefix(f"/{TENANT}"), raw)
        if not path.startswith("/v1.0/"):
            return 404, _error("NotFound", "No such path")
        header = self.headers.get("Authorization", "")
        if not (header.startswith("Bearer ") and header[7:] in self.graph.access_tokens):
            return 401, _error("InvalidAuthenticationToken", "Access token is invalid")
        rest = path.removeprefix("/v1.0/")
        body = json.loads(raw) if raw else {}
        with self.graph.lock:
            return self._graph(method, rest, query, body)

    # --- identity --------------------------------------------------------------------

    def _identity(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        base = self.graph.authority
        if path == "/v2.0/.well-known/openid-configuration" and method == "GET":
            return 200, {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
            }
        if path == "/oauth2/v2.0/token" and method == "POST":
            return self._token({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        return 404, {"error": "not_found"}

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        graph = self.graph
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000215"}
        grant = form.get("grant_type")
        if grant == "authorization_code":
            issued = graph.codes.pop(form.get("code", ""), None)
            if issued is None:
                return 400, {"error": "invalid_grant", "error_description": "AADSTS70008"}
            challenge, nonce = issued
            verifier = form.get("code_verifier", "")
            if _b64(hashlib.sha256(verifier.encode()).digest()) != challenge:
                return 400, {"error": "invalid_grant", "error_description": "AADSTS501481"}
            refresh = graph.add_refresh_token()
            return 200, self._tokens(refresh, nonce)
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            state = graph.refresh_tokens.get(token, "revoked")
            if state == "revoked":
                return 400, {"error": "invalid_grant", "error_description": "AADSTS700082"}
            if state == "consent":
                return 400, {"error": "interaction_required", "error_description": "AADSTS65001"}
            refresh = token
            if graph.rotate_refresh_tokens:
                refresh = graph.add_refresh_token()
            return 200, self._tokens(refresh, None)
        return 400, {"error": "unsupported_grant_type"}

    def _tokens(self, refresh: str, nonce: str | None) -> dict[str, Any]:
        access = "eyJ0." + secrets.token_urlsafe(24)
        self.graph.access_tokens.add(access)
        now = int(time.time())
        claims = {
            "iss": f"{self.graph.authority}/v2.0",
            "aud": CLIENT_ID,
            "sub": "owner-subject",
            "oid": "00000000-0000-4000-8000-0000000000aa",
            "tid": "00000000-0000-4000-8000-0000000000bb",
            "preferred_username": "owner@contoso.example",
            "iat": now,
            "exp": now + 3600,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        id_token = ".".join(
            [_b64(b'{"alg":"none","typ":"JWT"}'), _b64(json.dumps(claims).encode()), ""]
        )
        return {
            "token_type": "Bearer",
            "scope": self.graph.granted_scope,
            "expires_in": 3599,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
        }

    # --- Graph -----------------------------------------------------------------------

    def _graph(
        self, method: str, rest: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        if rest == "me/mailboxSettings/timeZone" and method == "GET":
            return 200, {"value": self.graph.mailbox_zone}
        if rest == "me/calendarView" and method == "GET":
            return self._view(query)
        if rest == "me/calendarView/delta" and method == "GET":
            return self._delta(query)
        if rest == "me/calendar/events" and method == "POST":
            return self._create(body)
        if rest.startswith("me/events/"):
            return self._event(method, rest.removeprefix("me/events/"), body)
        if rest == "subscriptions" and method == "POST":
            return self._subscribe(body)
        if rest.startswith("subscriptions/"):
            return self._subscription(method, rest.removeprefix("subscriptions/"), body)
        return 404, _error("NotFound", "No such resource")

    def _zone(self) -> str:
        prefer = self.headers.get("Prefer", "")
        if self.graph.honour_prefer and 'outlook.timezone="' in prefer:
            return prefer.split('outlook.timezone="', 1)[1].split('"', 1)[0]
        return self.graph.mailbox_zone

    def _out(self, event: dict[str, Any]) -> dict[str, Any]:
        zone = self._zone()
        return {
            "id": event["id"],
            "subject": event["subject"],
            "start": _graph_time(event["start_utc"], zone),
            "end": _graph_time(event["end_utc"], zone),
            "showAs": event["showAs"],
            "isCancelled": event["isCancelled"],
            "transactionId": event["transactionId"],
        }

    def _window(self, query: dict[str, list[str]]) -> tuple[datetime, datetime]:
        start = datetime.fromisoformat(query["startDateTime"][0].replace("Z", "+00:00"))
        end = datetime.fromisoformat(query["endDateTime"][0].replace("Z", "+00:00"))
        return start, end

    def _view(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        start, end = self._window(query)
        found = [
            self._out(e)
            for e in self.graph.events.values()
            if not e.get("deleted") and e["start_utc"] < end and e["end_utc"] > start
        ]
        return 200, {"value": sorted(found, key=lambda e: e["start"]["dateTime"])}

    def _delta(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        token = (query.get("$deltatoken") or ["0"])[0]
        if not token.isdigit() or int(token) > self.graph.change_seq:
            return 410, _error("SyncStateNotFound", "The sync state is not found")
        since = int(token)
        changes: list[dict[str, Any]] = []
        for event in self.graph.events.values():
            if event["changed"] <= since:
                continue
            if event.get("deleted"):
                changes.append({"id": event["id"], "@removed": {"reason": "deleted"}})
            else:
                changes.append(self._out(event))
        link = (
            f"{self.graph.graph_base_url}/me/calendarView/delta?$deltatoken={self.graph.change_seq}"
        )
        return 200, {"value": changes, "@odata.deltaLink": link}

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        transaction = body.get("transactionId")
        if transaction:
            for event in self.graph.events.values():
                if event["transactionId"] == transaction and not event.get("deleted"):
                    # Graph's idempotency: the same transactionId is the same event.
                    return 201, self._out(event)
        event_id = "AAMk" + secrets.token_hex(12)
        self.graph.events[event_id] = {
            "id": event_id,
            "subject": body.get("subject", ""),
            "start_utc": _read_time(body["start"]),
            "end_utc": _read_time(body["end"]),
            "showAs": body.get("showAs", "busy"),
            "isCancelled": False,
            "transactionId": transaction,
            "body": body.get("body"),
        }
        self.graph._touch(event_id)
        return 201, self._out(self.graph.events[event_id])

    def _event(
        self, method: str, event_id: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        event = self.graph.events.get(event_id)
        if event is None or event.get("deleted"):
            return 404, _error("ErrorItemNotFound", "The specified object was not found")
        if method == "GET":
            return 200, self._out(event)
        if method == "PATCH":
            if "start" in body:
                event["start_utc"] = _read_time(body["start"])
            if "end" in body:
                event["end_utc"] = _read_time(body["end"])
            if "subject" in body:
                event["subject"] = body["subject"]
            self.graph._touch(event_id)
            return 200, self._out(event)
        if method == "DELETE":
            event["deleted"] = True
            self.graph._touch(event_id)
            return 204, None
        return 405, _error("MethodNotAllowed", "Method not allowed")

    def _subscribe(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not str(body.get("notificationUrl", "")).startswith("https://"):
            return 400, _error("ValidationError", "notificationUrl must be https")
        sub_id = secrets.token_hex(16)
        subscription = {
            "id": sub_id,
            "resource": body["resource"],
            "changeType": body["changeType"],
            "clientState": body.get("clientState"),
            "notificationUrl": body["notificationUrl"],
            "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
            "expirationDateTime": body["expirationDateTime"],
        }
        self.graph.subscriptions[sub_id] = subscription
        return 201, subscription

    def _subscription(
        self, method: str, sub_id: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        subscription = self.graph.subscriptions.get(sub_id)
        if subscription is None:
            return 404, _error("ResourceNotFound", "Subscription not found")
        if method == "PATCH":
            subscription["expirationDateTime"] = body["expirationDateTime"]
            return 200, subscription
        if method == "DELETE":
            del self.graph.subscriptions[sub_id]
            return 204, None
        return 405, _error("MethodNotAllowed", "Method not allowed")


__all__ = ["CLIENT_ID", "CLIENT_SECRET", "FakeGraph"]
