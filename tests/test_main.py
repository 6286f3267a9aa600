from __future__ import annotations

import gc
import weakref

from app.main import settle_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settle_heap_freezes_what_start_up_built_after_collecting_its_garbage() -> None:
    garbage = weakref.ref(_Cycle())  # start-up garbage only the collector can free
    assert garbage() is not None
    try:
        settle_heap()
        assert garbage() is None  # collected, not frozen for the life of the process
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()  # the rest of the test run keeps an ordinary heap
