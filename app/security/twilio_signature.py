"""Twilio request signatures, checked with twilio's own RequestValidator.

The URL signed is the one Twilio called: our configured public base URL plus the path
and query the request arrived with. Never request.url behind a proxy, and never a
X-Forwarded-Host that any client can send.
"""

from __future__ import annotations

import base64
import hmac
from functools import lru_cache
from hashlib import sha1, sha256
from typing import Any, cast
from urllib.parse import unquote, urlparse

from starlette.datastructures import URL, FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    RequestValidator,
    add_port,
    get_signature_algorithm,
    remove_port,
)

from app.logs import bind

SIGNATURE_HEADER = "x-twilio-signature"
SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
SIGNATURE_BYTES, SETTINGS_BYTES = SIGNATURE_HEADER.encode(), SETTINGS_HEADER.encode()


# The algorithms RequestValidator.compute_signature knows, by their upper-case names.
HASHES = {HMAC_SHA1: sha1, HMAC_SHA256: sha256}
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 1000  # Starlette's default for request.form()


class SignatureRejected(Exception):
    """Refused: 403 for a bad signature, 415 for a body that is not a form."""

    def __init__(
        self, reason: str, status_code: int = 403, detail: str = "invalid Twilio signature"
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.detail = detail


def public_url(base_url: str, request: Request) -> str:
    host = next((value for name, value in request.scope["headers"] if name == b"host"), None)
    return _public_url(base_url, request.scope, host)


def _public_url(base_url: str, scope: Any, host: bytes | None) -> str:
    """`base_url` + `request.url`'s path and query (`host`: the first Host header)."""
    server = scope.get("server")
    path, query = _path_and_query(
        scope.get("scheme", "http"),
        tuple(server) if server is not None else None,
        scope["path"],
        scope.get("query_string", b""),
        host,
    )
    return f"{base_url}{path}?{query}" if query else base_url + path


@lru_cache(maxsize=256)
def _path_and_query(
    scheme: str, server: tuple[str, int] | None, path: str, query: bytes, host: bytes | None
) -> tuple[str, str]:
    """`request.url.path` and `.query`: Starlette's URL of a scope, from what it reads of
    the scope (building and splitting it was a tenth of the event loop's share of a
    Twilio turn, for the same few URLs every time)."""
    headers = [(b"host", host)] if host is not None else []
    scope = {"scheme": scheme, "server": server, "path": path, "query_string": query}
    url = URL(scope={**scope, "headers": headers})
    return url.path, url.query


@lru_cache(maxsize=256)
def _port_forms(url: str) -> tuple[str, str]:
    """The URL as configured (with or without its port), then the other form: twilio's
    `remove_port` and `add_port`, which validate() both signs."""
    parsed = urlparse(url)
    as_configured, other = add_port(parsed), remove_port(parsed)
    return (as_configured, other) if parsed.port else (other, as_configured)


class TwilioVerifier:
    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._token = auth_token.encode("utf-8")  # as RequestValidator keeps it
        self._base_url = public_base_url

    async def verified_form(self, request: Request) -> FormData:
        """The request's form once its signature checks out; SignatureRejected otherwise."""
        # Each header's first value, as `request.headers.get` reads it, in one pass.
        headers: dict[bytes, bytes] = dict(reversed(request.scope["headers"]))
        signature = headers.get(SIGNATURE_BYTES, b"").decode("latin-1")
        if not signature:
            raise SignatureRejected("missing signature")
        try:
            url = _public_url(self._base_url, request.scope, headers.get(b"host"))
        except ValueError:  # a path urlsplit cannot read ("/\t/["): no URL to have signed
            raise SignatureRejected("unreadable request URL") from None
        settings = headers.get(SETTINGS_BYTES)
        algorithm = get_signature_algorithm(settings.decode("latin-1") if settings else None)
        # Twilio posts these webhooks as forms. Any other body (JSON, multipart) would reach
        # RequestValidator as a string it cannot check, and the handlers read form fields.
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if content_type.split(";")[0].strip().lower() != FORM_TYPE:
            raise SignatureRejected(
                "not a form body", 415, f"Twilio webhooks take {FORM_TYPE} bodies"
            )
        # FormData itself: repeated keys and blank values are part of what was signed.
        form = await read_form(request)
        if not self._signed(url, form, signature, algorithm):
            raise SignatureRejected("signature mismatch")
        _bind_sids(form)
        return form

    def _signed(self, url: str, form: FormData, signature: str, algorithm: str) -> bool:
        """RequestValidator.validate's verdict for a form body, reached one signature at
        a time: validate() signs the URL both without and with its port (Twilio signs
        either) before comparing, where a genuine request matches the URL as configured,
        tried first. The port forms are twilio's (remove_port, add_port); the signature
        twilio's compute_signature with the form's part built in one pass (`signed_fields`)."""
        hash_function = HASHES.get((algorithm or HMAC_SHA1).upper())
        if hash_function is None:  # an algorithm twilio does not know: validate() logs, refuses
            return bool(self._validator.validate(url, form, signature, algorithm))
        fields = signed_fields(form)
        # Equal bytes for equal strings (UTF-8 is one-to-one), compared in constant time
        # as twilio's compare() does.
        expected = signature.encode("utf-8")
        for signed_url in _port_forms(url):
            digest = hmac.digest(self._token, (signed_url + fields).encode(), hash_function)
            if hmac.compare_digest(base64.b64encode(digest), expected):
                return True
        return False


def signed_fields(form: FormData) -> str:
    """What RequestValidator.compute_signature appends to the URL it signs: each field
    name in sorted order followed by each of its distinct values, sorted: the distinct
    (name, value) pairs in sorted order. Twilio's walks the whole form once per name
    (`getlist`)."""
    pairs = cast(list[tuple[str, str]], form.multi_items())  # a urlencoded form: text
    return "".join(map("".join, sorted(set(pairs))))


async def read_form(request: Request) -> FormData:
    """The urlencoded body as `request.form()` reads it (names and values unquoted as
    UTF-8 from the Latin-1 text, blank values kept, at most MAX_FIELDS fields, else 400),
    instead of python-multipart's callbacks."""
    text = (await request.body()).decode("latin-1")
    if text and text.count("&") >= MAX_FIELDS:
        detail = f"Too many fields. Maximum number of fields is {MAX_FIELDS}."
        raise HTTPException(status_code=400, detail=detail)
    return FormData(cast(list[tuple[str, str | UploadFile]], parse_form(text)))


def parse_form(text: str) -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(text, keep_blank_values=True)`, pair for pair: pieces
    split on "&" (empty ones skipped), then on the first "=" (none: a blank value), "+"
    read as a space, then %-escapes decoded as UTF-8 (invalid ones replaced). The same
    calls only where a piece has a "+" or a "%": parse_qsl's per-field calls were most
    of reading a form."""
    pairs = []
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value)
        pairs.append((name, value))
    return pairs


def _bind_sids(form: FormData) -> None:
    """Every later log line of this webhook names the call or message it is about."""
    call_sid, message_sid = form.get("CallSid"), form.get("MessageSid")
    bind(
        call_sid=call_sid if isinstance(call_sid, str) else None,
        message_sid=message_sid if isinstance(message_sid, str) else None,
        channel="voice" if call_sid else "sms" if message_sid else None,
    )
