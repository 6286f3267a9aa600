"""Metrics: with several server processes, /metrics in any one of them reports the sum of
all; each committed audit entry counts once in its series."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.parametrize(
    ("action", "actor", "details", "sample", "labels"),
    [
        (
            "appointment.booked",
            "agent",
            {"channel": "sms"},
            "sched_bookings_total",
            {"channel": "sms", "action": "booked"},
        ),
        (
            "webhook.accepted",
            "twilio:+1415",
            None,
            "sched_webhook_outcomes_total",
            {"provider": "twilio", "outcome": "accepted"},
        ),
        (
            "routing.failed",
            "vapi:call",
            {},
            "sched_webhook_outcomes_total",
            {"provider": "vapi", "outcome": "unrouted"},
        ),
        (
            "ratelimit.refused",
            "twilio",
            {"channel": "voice"},
            "sched_rate_limit_refusals_total",
            {"scope": "webhook_voice"},
        ),
        (
            "calendar.needs_reconsent",
            "job",
            None,
            "sched_calendar_errors_total",
            {"kind": "needs_reconsent"},
        ),
    ],
)
def test_each_committed_entry_counts_once_in_its_series(
    action: str, actor: str, details: Any, sample: str, labels: dict[str, str]
) -> None:
    from prometheus_client import REGISTRY

    from app import metrics

    before = REGISTRY.get_sample_value(sample, labels) or 0.0
    for _ in range(3):  # the first count makes the series' child, the others reuse it
        metrics._count(action, actor, details)
    assert REGISTRY.get_sample_value(sample, labels) == before + 3
