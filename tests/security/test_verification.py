"""Verification codes: attempts are counted atomically, so concurrent guesses cannot
check more codes than the limit (item 7), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import PhoneNumber, PhoneVerification, User
from app.security.verification import Outcome, Policy, check_code, code_hash
from tests.conftest import PINNED_NOW, Reader

POLICY = Policy(secret="test-secret", ttl=timedelta(minutes=10), max_attempts=5)
RIGHT, WRONG = "424242", "000000"
GUESSERS = 40


def pending_number(factory: sessionmaker[Session]) -> str:
    with factory() as session:
        user = User(name="Guessed", email="guessed@example.com")
        session.add(user)
        session.flush()
        number = PhoneNumber(e164="+14155550188", purpose="caller", user_id=user.id)
        session.add(number)
        session.flush()
        session.add(
            PhoneVerification(
                phone_number_id=number.id,
                user_id=user.id,
                code_hash=code_hash(POLICY.secret, number.id, RIGHT),
                expires_at=PINNED_NOW + POLICY.ttl,
                attempts=0,
                created_at=PINNED_NOW,
            )
        )
        session.commit()
        return number.id


def guess(factory: sessionmaker[Session], number_id: str, code: str) -> Outcome:
    with factory() as session:
        number = session.get(PhoneNumber, number_id)
        assert number is not None
        outcome = check_code(session, number, code, policy=POLICY, now=PINNED_NOW)
        session.commit()
        return outcome


def test_concurrent_wrong_codes_are_checked_at_most_max_attempts_times(
    session_factory: sessionmaker[Session], db: Reader
):
    number_id = pending_number(session_factory)
    start = threading.Barrier(GUESSERS)

    def one_guess(_: int) -> Outcome:
        start.wait()
        return guess(session_factory, number_id, WRONG)

    with ThreadPoolExecutor(GUESSERS) as pool:
        outcomes = Counter(pool.map(one_guess, range(GUESSERS)))
    # Exactly max_attempts codes were compared: 4 wrong, the 5th locks, the rest locked.
    assert outcomes == {Outcome.WRONG_CODE: 4, Outcome.LOCKED: GUESSERS - 4}
    assert db.scalar(select(PhoneVerification.attempts)) == POLICY.max_attempts
    # The right code no longer verifies after the limit.
    assert guess(session_factory, number_id, RIGHT) is Outcome.LOCKED
    assert db.get(PhoneNumber, number_id).verified_at is None


def test_the_right_code_within_the_limit_verifies_once(
    session_factory: sessionmaker[Session], db: Reader
):
    number_id = pending_number(session_factory)
    assert guess(session_factory, number_id, WRONG) is Outcome.WRONG_CODE
    start = threading.Barrier(4)

    def right_guess(_: int) -> Outcome:
        start.wait()
        return guess(session_factory, number_id, RIGHT)

    with ThreadPoolExecutor(4) as pool:
        outcomes = Counter(pool.map(right_guess, range(4)))
    assert outcomes[Outcome.VERIFIED] == 1
    assert db.get(PhoneNumber, number_id).verified_at is not None
