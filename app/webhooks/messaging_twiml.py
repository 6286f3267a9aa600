"""The SMS webhook's TwiML written as text, byte for byte what twilio's MessagingResponse
renders (tests/webhooks/test_messaging_twiml.py compares the two on generated text).

twilio's builder makes a `Message` object, turns it into an ElementTree element and
serialises the tree through a UTF-8 text stream, for a reply that is one element with
one text. The rules are voice_twiml's (the same package code writes both).
"""

from __future__ import annotations

from app.webhooks.voice_twiml import element, response

EMPTY = response()


def reply(text: str | None) -> str:
    """`<Response><Message>text</Message></Response>`; `<Response />` when there is no
    text (None or empty), as `MessagingResponse().message(text)` when text, else bare."""
    if not text:
        return EMPTY
    return response(element("Message", text=text))
