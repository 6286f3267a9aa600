"""Phone numbers: E.164 normalisation (phonenumbers) and masking for logs and output."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# phonenumbers' parse costs ~0.1 ms and a webhook turn reads the same few numbers several
# times (caller, our line, masked for logs and audit): both are pure, so each is parsed
# once per process while it stays among the recent ones.
RECENT_NUMBERS = 4096


# A North American number already in E.164 with a valid area-code digit, the form Twilio
# sends: phonenumbers would parse it to country 1 and this same national number (no
# national prefix to strip, no leading zero), find its 10 digits possible and format it
# back unchanged, so it is taken as it is (each new caller's turn paid two parses).
NANP_E164 = re.compile(r"\+1[2-9]\d{9}")


class InvalidPhoneNumber(ValueError):
    pass


@lru_cache(maxsize=RECENT_NUMBERS)
def to_e164(raw: str, region: str = "US") -> str:
    """Normalise a number as typed or as a provider sends it; raise on nonsense."""
    if NANP_E164.fullmatch(raw):
        return raw
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber("not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def try_e164(raw: str | None, region: str = "US") -> str | None:
    if not raw:
        return None
    try:
        return to_e164(raw, region)
    except InvalidPhoneNumber:
        return None


@lru_cache(maxsize=RECENT_NUMBERS)
def mask(e164: str | None) -> str:
    """`+14155550123` → `+1••••••0123`: enough to tell callers apart, not to dial."""
    if not e164:
        return "unknown"
    digits = e164.lstrip("+")
    if len(digits) <= 4:
        return "•" * len(digits)
    if NANP_E164.fullmatch(e164):
        country = "1"
    else:
        try:
            country = str(phonenumbers.parse(e164).country_code)
        except phonenumbers.NumberParseException:
            country = ""
    hidden = len(digits) - len(country) - 4
    return f"+{country}{'•' * max(hidden, 0)}{digits[-4:]}"
