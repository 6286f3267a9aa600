from __future__ import annotations

import threading
import time

import pytest
from limits import parse_many

from app.config import Settings
from app.security.ratelimit import CallerLimit, SweptMemoryStorage, build_limiter


def test_without_redis_the_limit_counts_in_process_with_no_thread_per_hit() -> None:
    limiter = build_limiter(Settings(_env_file=None, redis_url=None))
    assert isinstance(limiter.limiter.storage, SweptMemoryStorage)
    limit = CallerLimit(limiter, "3/minute", "sms")
    assert [limit.allow("+14155550100") for _ in range(5)] == [True, True, True, False, False]
    assert limit.allow("+14155550101")  # another caller has their own count
    time.sleep(0.05)  # the storage's one start-up timer has run out
    before = threading.active_count()
    for index in range(10):
        time.sleep(0.012)  # past limits' 10 ms timer: it would start a new one now
        limit.allow(f"+1415555{index:04d}")
        assert threading.active_count() == before


def test_expired_counts_are_swept_inline_at_most_once_per_period() -> None:
    storage = SweptMemoryStorage()
    storage.timer.join()  # limits' one start-up timer has swept (nothing) and ended
    storage._next_sweep = float("inf")  # inside the period: no sweep
    storage.incr("old", expiry=0.01)
    time.sleep(0.02)
    storage.incr("new", expiry=60)
    assert "old" in storage.storage  # expired, kept until the next sweep
    storage._next_sweep = 0.0  # the period is over: the next hit sweeps
    storage.incr("new", expiry=60)
    assert "old" not in storage.storage and storage.get("new") == 2
    assert storage._next_sweep > 0.0  # and the next sweep is a period away


def test_a_limit_text_is_parsed_once_into_what_parse_many_gives() -> None:
    from limits import parse_many

    from app.security import ratelimit

    text = "5/minute;100/hour"
    assert list(ratelimit._parsed(text)) == parse_many(text)
    assert ratelimit._parsed(text) is ratelimit._parsed(text)
    limiter = build_limiter(Settings(_env_file=None, redis_url=None))
    first, second = CallerLimit(limiter, text, "sms"), CallerLimit(limiter, text, "sms")
    assert [first.allow("+14155550199") for _ in range(3)] == [True] * 3
    assert [second.allow("+14155550199") for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    "text", ["3/minute", "5/minute;100/hour", "2 per 10 seconds", "1/day", "7/2 hours"]
)
def test_a_hit_counts_under_the_key_limits_itself_would_use(text: str) -> None:
    from app.security import ratelimit

    for identity in [("sms", "+14155550100"), ("pfx-1", "voice", "+442071838750"), ("a/b", "")]:
        for counted in ratelimit._counted(text):
            expected = counted.item.key_for(*identity)
            assert counted.head + "/".join(identity) + counted.tail == expected
            assert counted.expiry == counted.item.get_expiry()


@pytest.mark.parametrize("prefix", ["", "deploy-a"])
def test_a_caller_limit_and_limits_own_hits_spend_one_count(prefix: str) -> None:
    limiter = build_limiter(Settings(_env_file=None, redis_url=None, rate_limit_key_prefix=prefix))
    limit = CallerLimit(limiter, "4/minute;6/hour", "sms")
    strategy = limiter.limiter
    identity = (prefix, "sms", "+14155550142") if prefix else ("sms", "+14155550142")
    items = parse_many("4/minute;6/hour")
    # Two of limits' own hits, then the limit's: the third and fourth pass, the fifth not.
    assert all(strategy.hit(item, *identity) for item in items for _ in range(2))
    assert [limit.allow("+14155550142") for _ in range(3)] == [True, True, False]
    # The refused hit stopped at the spent limit, as all() over limits' hits does.
    assert [strategy.get_window_stats(item, *identity).remaining for item in items] == [0, 2]
    assert not limit.allow("+14155550142")
    assert strategy.get_window_stats(items[1], *identity).remaining == 2


def test_another_strategy_takes_its_own_hit() -> None:
    from limits.storage import MemoryStorage
    from limits.strategies import MovingWindowRateLimiter

    limiter = build_limiter(Settings(_env_file=None, redis_url=None))
    limiter._limiter = MovingWindowRateLimiter(MemoryStorage())
    limit = CallerLimit(limiter, "2/minute", "sms")
    assert [limit.allow("+14155550143") for _ in range(3)] == [True, True, False]
    item = parse_many("2/minute")[0]
    assert not limiter.limiter.test(item, "sched", "sms", "+14155550143")
