from __future__ import annotations

import pytest

from app.models import Agent
from app.security.caller_id import is_attested, may_manage_existing, needs_pin


@pytest.mark.parametrize(
    ("verstat", "attested"),
    [
        ("TN-Validation-Passed-A", True),
        ("TN-Validation-Passed-A-Diverted", True),
        ("TN-Validation-Passed-B", False),
        ("TN-Validation-Passed-C", False),
        ("TN-Validation-Failed-A", False),
        ("No-TN-Validation", False),
        ("TN-Validation-Failed", False),
        ("", False),
        (None, False),
    ],
)
def test_only_full_attestation_counts(verstat: str | None, attested: bool):
    assert is_attested(verstat) is attested


def test_strict_policy_needs_a_pin_unless_attested_or_verified():
    strict = Agent(caller_id_policy="strict")
    assert needs_pin(strict, attested=False)
    assert not needs_pin(strict, attested=True)
    assert not may_manage_existing(strict, attested=False, pin_verified=False)
    assert may_manage_existing(strict, attested=False, pin_verified=True)
    assert may_manage_existing(strict, attested=True, pin_verified=False)


def test_open_policy_trusts_caller_id():
    assert may_manage_existing(Agent(caller_id_policy="open"), attested=False, pin_verified=False)
