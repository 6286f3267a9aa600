"""With several server processes, /metrics in any one of them reports the sum of all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COUNT_ONE_BOOKING = "from app.metrics import BOOKINGS; BOOKINGS.labels('sms', 'booked').inc()"
SERVE_METRICS = "from app.metrics import metrics; print(metrics().body.decode())"


def _run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_metrics_add_up_across_worker_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(3):  # three workers, each booking once, then gone
        _run(COUNT_ONE_BOOKING, env)

    served = _run(SERVE_METRICS, env)

    assert 'sched_bookings_total{action="booked",channel="sms"} 3.0' in served
