"""Percentiles and a one-line report, shared by the benchmarks."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def report(name: str, samples_ms: list[float]) -> dict[str, float]:
    p50, p99 = percentile(samples_ms, 0.50), percentile(samples_ms, 0.99)
    mean = statistics.fmean(samples_ms)
    print(
        f"{name:<44} n={len(samples_ms):>6}  mean={mean:8.3f} ms  "
        + f"p50={p50:8.3f} ms  p99={p99:8.3f} ms"
    )
    return {"p50": p50, "p99": p99, "mean": mean}
