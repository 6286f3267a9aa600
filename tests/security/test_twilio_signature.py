"""TwilioVerifier against Twilio's own published vectors and Starlette's FormData."""

from __future__ import annotations

import asyncio
import base64
import hmac
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator

from app.security.twilio_signature import (
    HASHES,
    MAX_FIELDS,
    SignatureRejected,
    TwilioVerifier,
    parse_form,
    public_url,
    read_form,
    signed_fields,
)

# Twilio's published example (tests/fixtures/twilio/README.md).
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


def make_request(
    path: str, query: str, body: bytes, headers: dict[str, str], host: str = "internal:8000"
) -> Request:
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"host", host.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": raw_headers,
        "server": ("internal", 8000),
    }
    return Request(scope, receive)


def verify(
    signature: str, params: list[tuple[str, str]] | dict[str, str], token: str = "12345"
) -> object:
    body = urlencode(params).encode()
    request = make_request(
        "/myapp.php",
        "foo=1&bar=2",
        body,
        {
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature,
        },
    )
    verifier = TwilioVerifier(token, "https://mycompany.com")
    return asyncio.run(verifier.verified_form(request))


def test_public_url_is_configured_base_plus_path_and_query():
    request = make_request("/myapp.php", "foo=1&bar=2", b"", {}, host="10.0.0.7:8000")
    assert (
        public_url("https://mycompany.com", request)
        == "https://mycompany.com/myapp.php?foo=1&bar=2"
    )


def test_twilio_published_vector_passes_behind_a_proxy():
    form = verify("RSOYDt4T1cUTdK1PDd93/VVr8B8=", VECTOR_PARAMS)
    assert form["Digits"] == "1234"  # type: ignore[index]


def test_twilio_published_vector_with_port_passes():
    verify("kvajT1Ptam85bY51eRf/AJRuM3w=", VECTOR_PARAMS)


@pytest.mark.parametrize(
    ("signature", "params", "token"),
    [
        ("RSOYDt4T1cUTdK1PDd93/VVr8B8=", {**VECTOR_PARAMS, "Digits": "1235"}, "12345"),
        ("RSOYDt4T1cUTdK1PDd93/VVr8B8=", VECTOR_PARAMS, "54321"),
        ("", VECTOR_PARAMS, "12345"),
    ],
)
def test_tampered_params_wrong_token_or_no_signature_are_rejected(signature, params, token):
    with pytest.raises(SignatureRejected):
        verify(signature, params, token)


def test_repeated_keys_and_blank_values_are_signed_as_sent():
    params = [("MediaUrl", "a"), ("MediaUrl", "b"), ("Body", ""), *VECTOR_PARAMS.items()]

    class Multi(dict):  # what the signer sees: every value of a repeated key
        def getlist(self, key: str) -> list[str]:
            return [v for k, v in params if k == key]

    signature = RequestValidator("12345").compute_signature(
        "https://mycompany.com/myapp.php?foo=1&bar=2", Multi(params)
    )
    form = verify(signature, params)
    assert form.getlist("MediaUrl") == ["a", "b"]  # type: ignore[attr-defined]
    with pytest.raises(SignatureRejected):
        verify(signature, [p for p in params if p != ("MediaUrl", "b")])


def form_request(body: bytes, headers: dict[str, str] | None = None) -> Request:
    request = make_request(
        "/myapp.php",
        "foo=1&bar=2",
        body,
        {"content-type": "application/x-www-form-urlencoded", **(headers or {})},
    )
    request.scope["app"] = None  # inside an app, Starlette's parser refuses with a 400
    return request


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"a=1;b=2&c=3",  # a semicolon is data, not a separator
        b"a=1&&b=&c",  # empty pieces skipped, blank values kept
        b"a+b=%C3%A9+x&%3D=%26",
        "é=ü".encode(),  # raw bytes: read as Latin-1, as Starlette reads them
        b"a=1&a=2&a=",
        b"=x&y",
        b"a=%ZZ%C3",  # a broken escape stays, an invalid UTF-8 one is replaced
        b"a==b",
        urlencode({**VECTOR_PARAMS, "Body": "Réservez demain à 15h ✓ & +1 (555)"}).encode(),
    ],
)
def test_the_form_reads_as_starlettes_parser_reads_it(body: bytes) -> None:
    async def both() -> tuple[list[tuple[str, object]], list[tuple[str, object]]]:
        ours = await read_form(form_request(body))
        starlettes = await form_request(body).form()
        return ours.multi_items(), starlettes.multi_items()

    ours, starlettes = asyncio.run(both())
    assert ours == starlettes


def test_a_form_of_too_many_fields_is_a_400_as_starlettes() -> None:
    body = "&".join(f"f{i}=x" for i in range(MAX_FIELDS + 1)).encode()
    with pytest.raises(HTTPException) as ours:
        asyncio.run(read_form(form_request(body)))

    async def starlettes_form() -> object:
        return await form_request(body).form()

    with pytest.raises(HTTPException) as starlettes:
        asyncio.run(starlettes_form())
    assert (ours.value.status_code, ours.value.detail) == (400, starlettes.value.detail)
    form = asyncio.run(read_form(form_request(body.rpartition(b"&")[0])))
    assert len(form) == MAX_FIELDS


def _sign(url: str, algorithm: str, token: str = "12345") -> str:
    return RequestValidator(token).compute_signature(url, VECTOR_PARAMS, algorithm)


@pytest.mark.parametrize("base", ["https://mycompany.com", "https://mycompany.com:8443"])
@pytest.mark.parametrize(
    ("signed_url", "algorithm", "token"),
    [
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "HMAC_SHA1", "12345"),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "HMAC_SHA1", "12345"),
        ("https://mycompany.com:8443/myapp.php?foo=1&bar=2", "HMAC_SHA1", "12345"),
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "HMAC_SHA256", "12345"),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "HMAC_SHA256", "12345"),
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "HMAC_SHA1", "54321"),
        ("https://mycompany.com/myapp.php?foo=2&bar=2", "HMAC_SHA1", "12345"),
        ("https://other.example/myapp.php?foo=1&bar=2", "HMAC_SHA256", "12345"),
    ],
)
@pytest.mark.parametrize("header_algorithm", ["HMAC_SHA1", "HMAC_SHA256", "HMAC_SHA512"])
def test_the_verdict_is_request_validators(
    base: str, signed_url: str, algorithm: str, token: str, header_algorithm: str
) -> None:
    """One signature computed at a time, the same verdict as validate() computing both."""
    signature = _sign(signed_url, algorithm, token)
    headers = {
        "x-twilio-signature": signature,
        "x-twilio-webhooks-signature-settings": f"key=k1,algorithm={header_algorithm}",
    }
    request = form_request(urlencode(VECTOR_PARAMS).encode(), headers)
    expected = RequestValidator("12345").validate(
        public_url(base, request), VECTOR_PARAMS, signature, header_algorithm
    )
    verifier = TwilioVerifier("12345", base)
    try:
        asyncio.run(verifier.verified_form(request))
        accepted = True
    except SignatureRejected:
        accepted = False
    assert accepted == expected


class Multi(dict[str, str]):
    """A form as twilio's signer reads one: every value of a repeated key by getlist."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]


# Field text with what a form may carry: XML and URL specials, unicode, blanks, repeats.
field_text = st.text(
    alphabet=st.sampled_from([*"aAzZ09 _-+&=%<>\"'é✓\u00a0\u4e2d", "😀"]), max_size=12
)
field_name = st.sampled_from(["Body", "From", "To", "é", "MediaUrl0"]) | field_text
forms = st.lists(st.tuples(field_name, field_text), max_size=12)


@settings(max_examples=300, deadline=None)
@given(pairs=forms, algorithm=st.sampled_from([HMAC_SHA1, HMAC_SHA256]))
def test_the_signed_fields_sign_as_twilios_compute_signature(
    pairs: list[tuple[str, str]], algorithm: str
) -> None:
    url = "https://mycompany.com/webhooks/twilio/sms/inbound?turn=1"
    form = FormData(pairs)
    hash_function = HASHES[algorithm]
    ours = hmac.new(b"12345", (url + signed_fields(form)).encode(), hash_function).digest()
    twilios = RequestValidator("12345").compute_signature(url, Multi(pairs), algorithm)
    assert base64.b64encode(ours).decode() == twilios


@settings(max_examples=200, deadline=None)
@given(
    pairs=forms,
    signed_url=st.sampled_from(
        [
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "https://other.example/myapp.php?foo=1&bar=2",
        ]
    ),
    algorithm=st.sampled_from([HMAC_SHA1, HMAC_SHA256]),
    header_algorithm=st.sampled_from(["HMAC_SHA1", "hmac_sha256", "HMAC_SHA256", "HMAC_SHA512"]),
    tamper=st.booleans(),
)
def test_the_verdict_on_any_form_is_request_validators(
    pairs: list[tuple[str, str]],
    signed_url: str,
    algorithm: str,
    header_algorithm: str,
    tamper: bool,
) -> None:
    signature = RequestValidator("12345").compute_signature(signed_url, Multi(pairs), algorithm)
    if tamper:
        signature = signature[:-2] + "x="
    headers = {
        "x-twilio-signature": signature,
        "x-twilio-webhooks-signature-settings": f"key=k1,algorithm={header_algorithm}",
    }
    request = form_request(urlencode(pairs).encode(), headers)
    form = asyncio.run(read_form(form_request(urlencode(pairs).encode())))
    base = "https://mycompany.com"
    expected = RequestValidator("12345").validate(
        public_url(base, request), form, signature, header_algorithm
    )
    try:
        asyncio.run(TwilioVerifier("12345", base).verified_form(request))
        accepted = True
    except SignatureRejected:
        accepted = False
    assert accepted == expected


# What a body, a path or a Host header may hold: URL specials, escapes good and broken,
# unicode, controls.
url_text = st.lists(
    st.sampled_from([*"aZ09 _-+&=%;:/?#@[]\\.\t", "%2B", "%C3%A9", "%ZZ", "é", "✓"]),
    max_size=20,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=url_text)
def test_a_form_is_parsed_as_parse_qsl_parses_it(text: str) -> None:
    assert parse_form(text) == parse_qsl(text, keep_blank_values=True)


@settings(max_examples=300, deadline=None)
@given(
    path=url_text.map(lambda p: "/" + p),
    query=url_text,
    host=st.none() | url_text,
    server=st.none() | st.just(("internal", 8000)),
    scheme=st.sampled_from(["http", "https"]),
)
def test_the_public_url_is_the_base_plus_the_requests_url_path_and_query(
    path: str, query: str, host: str | None, server: tuple[str, int] | None, scheme: str
) -> None:
    headers = [(b"content-type", b"text/plain")]
    if host is not None:
        headers += [(b"host", host.encode()), (b"host", b"second.example")]
    scope = {
        "type": "http",
        "scheme": scheme,
        "path": path,
        "query_string": query.encode(),
        "headers": headers,
        "server": server,
    }
    request = Request(scope)
    url = request.url
    try:
        expected = "https://mycompany.com" + url.path + (f"?{url.query}" if url.query else "")
    except ValueError:  # Starlette cannot read this URL either (urlsplit refuses it)
        with pytest.raises(ValueError):
            public_url("https://mycompany.com", Request(scope))
        return
    assert public_url("https://mycompany.com", Request(scope)) == expected


def test_a_request_whose_url_cannot_be_read_is_rejected_not_failed() -> None:
    """urlsplit drops a tab, so the path "/<tab>/[" reads as a bracket host: no URL it
    could have been signed for, so a 403 rather than an error."""
    signature = _sign("https://mycompany.com/", HMAC_SHA1)
    request = form_request(b"", {"x-twilio-signature": signature})
    request.scope["path"] = "/\t/["
    request.scope["headers"] = [(n, v) for n, v in request.scope["headers"] if n != b"host"]
    request.scope["server"] = None
    with pytest.raises(SignatureRejected, match="unreadable"):
        asyncio.run(TwilioVerifier("12345", "https://mycompany.com").verified_form(request))


def test_headers_are_read_as_starlette_reads_them_first_value_wins() -> None:
    signature = _sign("https://mycompany.com/myapp.php?foo=1&bar=2", HMAC_SHA1)
    request = form_request(urlencode(VECTOR_PARAMS).encode(), {"x-twilio-signature": signature})
    # A second signature header (a forged one) is not the one read.
    request.scope["headers"].append((b"x-twilio-signature", b"forged"))
    asyncio.run(TwilioVerifier("12345", "https://mycompany.com").verified_form(request))
    request = form_request(urlencode(VECTOR_PARAMS).encode(), {"x-twilio-signature": "forged"})
    request.scope["headers"].append((b"x-twilio-signature", signature.encode()))
    with pytest.raises(SignatureRejected):
        asyncio.run(TwilioVerifier("12345", "https://mycompany.com").verified_form(request))
