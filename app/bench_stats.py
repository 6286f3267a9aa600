"""Database round trips for the benchmarks (mounted only when BENCH_ENDPOINTS is on).

Counts what crosses the wire to the database: every statement (an executemany is one),
BEGIN on PostgreSQL (psycopg sends it on its own), COMMIT, ROLLBACK and the pool's
pre-ping at checkout. bench/turn_cost.py reads the counts before and after a load run
and divides by the turns served.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import Engine, event

from app.services import services_of

router = APIRouter(prefix="/_bench", tags=["bench"], include_in_schema=False)


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, *_: Any, **__: Any) -> None:
        with self._lock:
            self.count += 1


def count_round_trips(engine: Engine) -> RoundTrips:
    trips = RoundTrips()
    event.listen(engine, "before_cursor_execute", trips.add)
    event.listen(engine, "commit", trips.add)
    event.listen(engine, "rollback", trips.add)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "begin", trips.add)
        if engine.pool._pre_ping:
            event.listen(engine.pool, "checkout", trips.add)
    return trips


@router.get("/db")
def round_trips(request: Request) -> dict[str, Any]:
    trips = services_of(request).round_trips
    if trips is None:  # the router is mounted only with BENCH_ENDPOINTS, which sets it
        raise RuntimeError("round trips are not counted in this app")
    return {"round_trips": trips.count, "pid": os.getpid()}
