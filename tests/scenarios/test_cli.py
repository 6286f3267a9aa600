"""`python -m app scenarios run --repeat k`: every scenario played k times, pass^k printed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.scenarios.cli import pass_k


def test_pass_k_counts_only_scenarios_that_succeeded_every_time() -> None:
    runs = {"a": [True, True, True], "b": [True, False, True], "c": [False, False, False]}
    assert pass_k(runs) == pytest.approx(1 / 3)
    assert pass_k({}) == 0.0


def test_repeat_plays_each_scenario_k_times_and_prints_pass_k(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = CliRunner().invoke(
        cli,
        ["scenarios", "run", "--engine", "openai", "--only", "book-tomorrow-3pm", "--repeat", "2"],
    )
    assert result.exit_code == 0, result.output
    assert "task success 2/2 (100.0%), unsafe outcomes 0" in result.output
    assert "pass^2 1.000 over 1 scenarios" in result.output
