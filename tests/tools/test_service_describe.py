from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.tools.service import _describe_all, _describe_local


def test_a_slot_list_reads_as_each_slot_described_alone() -> None:
    """Every minute of the day (midnight, noon, the hour before each), across days, months
    and zones, runs of one day and days that change between neighbours."""
    chooser = random.Random(16)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for zone in ("America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"):
        local = ZoneInfo(zone)
        for _ in range(40):
            moments = sorted(
                start + timedelta(minutes=chooser.randrange(0, 366 * 1440))
                for _ in range(chooser.randrange(0, 25))
            )
            slots = [moment.astimezone(local) for moment in moments]
            assert _describe_all(slots) == ", ".join(map(_describe_local, slots))
        day = [datetime(2026, 11, 24, tzinfo=local) + timedelta(minutes=m) for m in range(1440)]
        assert _describe_all(day) == ", ".join(map(_describe_local, day))
    assert _describe_all([]) == ""
