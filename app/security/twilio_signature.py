"""Twilio request signatures, checked with twilio's own RequestValidator.

The URL signed is the one Twilio called: our configured public base URL plus the path
and query the request arrived with. Never request.url behind a proxy, and never a
X-Forwarded-Host that any client can send.
"""

from __future__ import annotations

import base64
import hmac
from hashlib import sha1, sha256
from typing import cast
from urllib.parse import parse_qsl, urlparse

from starlette.datastructures import FormData, UploadFile
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
    url = base_url + request.url.path
    query = request.url.query
    return f"{url}?{query}" if query else url


class TwilioVerifier:
    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._token = auth_token.encode("utf-8")  # as RequestValidator keeps it
        self._base_url = public_base_url

    async def verified_form(self, request: Request) -> FormData:
        """The request's form once its signature checks out; SignatureRejected otherwise."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise SignatureRejected("missing signature")
        url = public_url(self._base_url, request)
        algorithm = get_signature_algorithm(request.headers.get(SETTINGS_HEADER))
        # Twilio posts these webhooks as forms. Any other body (JSON, multipart) would reach
        # RequestValidator as a string it cannot check, and the handlers read form fields.
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_TYPE:
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
        parsed = urlparse(url)
        as_configured, other = add_port(parsed), remove_port(parsed)
        if not parsed.port:
            as_configured, other = other, as_configured
        fields = signed_fields(form)
        # Equal bytes for equal strings (UTF-8 is one-to-one), compared in constant time
        # as twilio's compare() does.
        expected = signature.encode("utf-8")
        for signed_url in (as_configured, other):
            digest = hmac.new(self._token, (signed_url + fields).encode("utf-8"), hash_function)
            if hmac.compare_digest(base64.b64encode(digest.digest()), expected):
                return True
        return False


def signed_fields(form: FormData) -> str:
    """What RequestValidator.compute_signature appends to the URL it signs: each field
    name in sorted order followed by each of its distinct values, sorted. Twilio's walks
    the whole form once per name (`getlist`); this groups the values in one pass."""
    values: dict[str, set[str]] = {}
    for name, value in form.multi_items():
        values.setdefault(name, set()).add(cast(str, value))  # a urlencoded form: text
    return "".join(name + value for name in sorted(values) for value in sorted(values[name]))


async def read_form(request: Request) -> FormData:
    """The urlencoded body as `request.form()` reads it (names and values unquoted as
    UTF-8 from the Latin-1 text, blank values kept, at most MAX_FIELDS fields, else 400),
    in one urllib call instead of python-multipart's callbacks."""
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        detail = f"Too many fields. Maximum number of fields is {MAX_FIELDS}."
        raise HTTPException(status_code=400, detail=detail) from None
    return FormData(cast(list[tuple[str, str | UploadFile]], pairs))  # list is invariant


def _bind_sids(form: FormData) -> None:
    """Every later log line of this webhook names the call or message it is about."""
    call_sid, message_sid = form.get("CallSid"), form.get("MessageSid")
    bind(
        call_sid=call_sid if isinstance(call_sid, str) else None,
        message_sid=message_sid if isinstance(message_sid, str) else None,
        channel="voice" if call_sid else "sms" if message_sid else None,
    )
