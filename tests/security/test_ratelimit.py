from __future__ import annotations

import threading
import time

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
