from __future__ import annotations

import pytest

from app.security.stream_token import StreamTokens, TokenRejected

SID = "CA" + "a" * 32
NOW = 1_800_000_000.0


@pytest.fixture
def tokens() -> StreamTokens:
    return StreamTokens(b"secret", lifetime_seconds=60)


def test_token_admits_its_call_until_it_expires(tokens: StreamTokens) -> None:
    token = tokens.issue(SID, NOW)
    tokens.verify(token, SID, NOW + 60)
    with pytest.raises(TokenRejected, match="expired"):
        tokens.verify(token, SID, NOW + 61)


def test_token_is_bound_to_the_call_and_the_secret(tokens: StreamTokens) -> None:
    token = tokens.issue(SID, NOW)
    with pytest.raises(TokenRejected, match="does not match"):
        tokens.verify(token, "CA" + "b" * 32, NOW)
    with pytest.raises(TokenRejected, match="does not match"):
        StreamTokens(b"other", 60).verify(token, SID, NOW)
    expires, _, mac = token.partition(".")
    with pytest.raises(TokenRejected, match="does not match"):
        tokens.verify(f"{int(expires) + 3600}.{mac}", SID, NOW)


@pytest.mark.parametrize("token", ["", ".", "abc.def", "123", "123."])
def test_malformed_tokens_are_rejected(tokens: StreamTokens, token: str) -> None:
    with pytest.raises(TokenRejected, match=r"malformed|does not match"):
        tokens.verify(token, SID, NOW)
    with pytest.raises(TokenRejected):
        tokens.verify(tokens.issue(SID, NOW), "", NOW)
