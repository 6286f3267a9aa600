"""Agent PINs: hashed with scrypt (slow, salted), checked in constant time.

A PIN is what a caller whose caller ID the network does not vouch for says or keys in
before the agent lists, moves or cancels appointments. Four to eight digits are short, so
the hash must be slow and the attempts few (see the webhooks' per-call and per-caller
limits).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

SCHEME = "scrypt"
# n=2**14, r=8 costs ~16 MiB and tens of milliseconds: cheap once per call, dear in bulk.
_N, _R, _P = 2**14, 8, 1
_KEY_LEN = 32
PIN_PATTERN = re.compile(r"^\d{4,8}$")

_SPOKEN_DIGITS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "one": "1",
    "won": "1",
    "two": "2",
    "to": "2",
    "too": "2",
    "three": "3",
    "four": "4",
    "for": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "ate": "8",
    "nine": "9",
}


class InvalidPin(ValueError):
    pass


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=n, r=r, p=p, dklen=_KEY_LEN, maxmem=64 * 1024 * 1024
    )


def hash_pin(pin: str) -> str:
    """`scrypt$n$r$p$salt$hash`; raises InvalidPin unless 4 to 8 digits."""
    if not PIN_PATTERN.match(pin):
        raise InvalidPin("a PIN is 4 to 8 digits")
    salt = secrets.token_bytes(16)
    digest = _derive(pin, salt, _N, _R, _P)
    return f"{SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_pin(pin: str, stored: str | None) -> bool:
    if not stored or not PIN_PATTERN.match(pin):
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        candidate = _derive(pin, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(candidate, _unb64(digest))


def digits_from_speech(text: str) -> str:
    """What a caller said or keyed, as digits: "one two 3 four" → "1234".

    Speech recognisers write digits as numerals or words, with spaces, dashes or
    full stops between them; anything else in the utterance is ignored.
    """
    digits: list[str] = []
    for token in re.findall(r"[a-z]+|\d", text.lower()):
        if token.isdigit():
            digits.append(token)
        elif token in _SPOKEN_DIGITS:
            digits.append(_SPOKEN_DIGITS[token])
    return "".join(digits)
