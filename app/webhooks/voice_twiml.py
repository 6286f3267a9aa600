"""The voice webhooks' TwiML written as text, byte for byte what twilio's VoiceResponse
renders.

twilio's builder makes a verb object per element, turns each into an ElementTree element
and serialises the tree through a UTF-8 text stream: on a Gather turn that cost more than
everything else the webhook itself does to build its answer. The rules it follows, kept
here (tests/webhooks/test_voice_twiml.py compares the two on many inputs):

- the XML declaration, then `<Response>`; attributes sorted by name, `None` left out,
  booleans as `true`/`false`, anything else as `str()`;
- an element without text or children is written `<Name ... />`; empty text is no text;
- ElementTree's escaping: `& < >` in text; those, `"` and CR, LF, TAB in attributes;
- what UTF-8 cannot encode (a lone surrogate) becomes a character reference.
"""

from __future__ import annotations

from collections.abc import Mapping

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
# Attribute names as TwiML spells them (camelCase) and their values.
Attributes = Mapping[str, object]
NO_ATTRIBUTES: Attributes = {}


def response(*verbs: str) -> str:
    """The document: `verbs` are elements written by `element`."""
    body = "".join(verbs)
    document = f"{DECLARATION}<Response>{body}</Response>" if body else f"{DECLARATION}<Response />"
    if document.isascii():
        return document
    # ElementTree writes through a UTF-8 stream with errors="xmlcharrefreplace".
    return document.encode("utf-8", "xmlcharrefreplace").decode("utf-8")


def element(
    tag: str, attributes: Attributes = NO_ATTRIBUTES, text: str = "", inner: str = ""
) -> str:
    """`<tag attributes>text inner</tag>`; `inner` is child elements written by this."""
    opening = f"<{tag}{_attributes(attributes)}" if attributes else f"<{tag}"
    if not text and not inner:
        return f"{opening} />"
    return f"{opening}>{_escape_text(text) if text else ''}{inner}</{tag}>"


def _attributes(attributes: Attributes) -> str:
    written = []
    for name in sorted(attributes):
        value = attributes[name]
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = _escape_attribute(str(value))
        written.append(f' {name}="{text}"')
    return "".join(written)


def _escape_text(text: str) -> str:
    """xml.etree.ElementTree._escape_cdata."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attribute(text: str) -> str:
    """xml.etree.ElementTree._escape_attrib."""
    text = _escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text
