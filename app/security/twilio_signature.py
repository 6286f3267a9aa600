"""Twilio request signatures, checked with twilio's own RequestValidator.

The URL signed is the one Twilio called: our configured public base URL plus the path
and query the request arrived with. Never request.url behind a proxy, and never a
X-Forwarded-Host that any client can send.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import parse_qsl, urlparse

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from twilio.request_validator import (
    RequestValidator,
    add_port,
    compare,
    get_signature_algorithm,
    remove_port,
)

from app.logs import bind

SIGNATURE_HEADER = "x-twilio-signature"
SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"


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
        """RequestValidator.validate's verdict for a form body, its own signatures
        computed one at a time: validate() signs the URL both without and with its port
        (Twilio signs either) before comparing, where a genuine request matches the
        URL as configured, tried first. The signing is twilio's (compute_signature,
        remove_port, add_port)."""
        parsed = urlparse(url)
        as_configured, other = add_port(parsed), remove_port(parsed)
        if not parsed.port:
            as_configured, other = other, as_configured
        try:
            for signed_url in (as_configured, other):
                computed = self._validator.compute_signature(signed_url, form, algorithm)
                if compare(computed, signature):
                    return True
        except ValueError:  # an algorithm twilio does not know: validate() logs, refuses
            return bool(self._validator.validate(url, form, signature, algorithm))
        return False


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
