from __future__ import annotations

import pytest

from app.security.pins import InvalidPin, digits_from_speech, hash_pin, verify_pin


def test_pin_hash_is_salted_and_verifies_only_the_right_pin():
    first, second = hash_pin("4321"), hash_pin("4321")
    assert first != second  # salted
    assert "4321" not in first
    assert first.startswith("scrypt$")
    assert verify_pin("4321", first)
    assert not verify_pin("4322", first)
    assert not verify_pin("", first)


@pytest.mark.parametrize("bad", ["123", "123456789", "12a4", ""])
def test_hash_pin_refuses_what_is_not_a_pin(bad: str):
    with pytest.raises(InvalidPin):
        hash_pin(bad)


@pytest.mark.parametrize("stored", [None, "", "plain", "bcrypt$1$2$3$x$y", "scrypt$x$8$1$a$b"])
def test_verify_pin_is_false_for_missing_or_foreign_hashes(stored: str | None):
    assert not verify_pin("4321", stored)


@pytest.mark.parametrize(
    ("heard", "digits"),
    [
        ("4321", "4321"),
        ("4 3 2 1.", "4321"),
        ("four three two one", "4321"),
        ("My PIN is four, three, two, one", "4321"),
        ("oh one two three", "0123"),
        ("4-3-2-1", "4321"),
        ("no idea", ""),
    ],
)
def test_spoken_digits(heard: str, digits: str):
    assert digits_from_speech(heard) == digits
