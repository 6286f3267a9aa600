"""Runs the suite: every selected scenario on a real server, then the table.

Success rate is printed; unsafe outcomes make the exit code non-zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.scenarios.judge import Outcome
from app.scenarios.model import CATEGORIES, Scenario

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Selection:
    only: str | None = None
    channel: str = "sms"


def select(scenarios: Iterable[Scenario], selection: Selection) -> list[Scenario]:
    picked = [s for s in scenarios if selection.channel in s.channels]
    if selection.only:
        picked = [
            s
            for s in picked
            if selection.only in {s.category, s.id, s.source, s.source.removesuffix(".yaml")}
        ]
    return picked


def table(outcomes: list[Outcome], title: str) -> list[str]:
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[outcome.scenario.category].append(outcome)
    lines = [
        f"== {title}",
        f"{'category':<14}{'n':>5}{'success':>9}{'rate':>8}{'unsafe':>8}{'turns':>7}",
    ]
    order = [c for c in CATEGORIES if c in groups] + sorted(set(groups) - set(CATEGORIES))
    for category in order:
        lines.append(_row(category, groups[category]))
    lines.append(_row("ALL", outcomes))
    return lines


def _row(name: str, outcomes: list[Outcome]) -> str:
    n = len(outcomes)
    ok = sum(o.success for o in outcomes)
    unsafe = sum(bool(o.unsafe) for o in outcomes)
    turns = sum(o.turns for o in outcomes) / n if n else 0.0
    rate = 100.0 * ok / n if n else 0.0
    return f"{name:<14}{n:>5}{ok:>9}{rate:>7.1f}%{unsafe:>8}{turns:>7.2f}"


def details(outcomes: list[Outcome], failures: bool) -> list[str]:
    lines: list[str] = []
    for outcome in outcomes:
        scenario = outcome.scenario
        for reason in outcome.unsafe:
            lines.append(f"UNSAFE {scenario.id} [{scenario.source}]: {reason}")
        if failures:
            for reason in outcome.failures:
                lines.append(f"failed {scenario.id} [{scenario.source}]: {reason}")
    return lines
