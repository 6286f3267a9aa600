"""`python -m app scenarios run`: the scenario suite against a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.agent.engine import Engine
from app.config import Settings

scenarios_cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="The conversation scenario suite"
)


def _engine_for(name: str) -> Engine | None:
    """The engine to play against, or None for the one the stage's settings build.

    `openai` uses the endpoint OPENAI_BASE_URL / OPENAI_API_KEY name (a live model, or a
    `fake-openai --replay` recording); with neither set, the deterministic scripted model
    answers in process, so CI measures the LLM engine's tool loop and guardrails offline.
    Fails before starting anything when the engine does not exist."""
    from app.agent.factory import build_engine

    settings = Settings(conversation_engine=name)
    if name == "openai" and not (settings.openai_base_url or settings.openai_api_key):
        from app.agent.fake_openai import in_process_client
        from app.agent.llm import LlmEngine, Options

        return LlmEngine(in_process_client(), Options.from_settings(settings))
    try:
        build_engine(settings)
        return None
    except (ValueError, ImportError) as error:
        typer.echo(f"cannot run scenarios with --engine {name}: {error}", err=True)
        raise typer.Exit(2) from error


@scenarios_cli.command("run")
def run(
    engine: Annotated[str, typer.Option(help="CONVERSATION_ENGINE to play against")] = "offline",
    only: Annotated[str | None, typer.Option(help="One category, scenario id or file name")] = None,
    channel: Annotated[str, typer.Option(help="sms or voice")] = "sms",
    heldout: Annotated[bool, typer.Option(help="Play the held-out split instead")] = False,
    split: Annotated[
        str | None, typer.Option(help="Play another held-out folder under tests/scenarios")
    ] = None,
    failures: Annotated[bool, typer.Option(help="List every failed scenario and why")] = False,
    transcript: Annotated[bool, typer.Option(help="Print each conversation")] = False,
    repeat: Annotated[
        int, typer.Option(min=1, help="Play each scenario k times; prints pass^k (live models)")
    ] = 1,
    report: Annotated[
        Path | None, typer.Option(help="Write every outcome and conversation as JSON here")
    ] = None,
) -> None:
    """Play scenarios through the signed Twilio webhooks; exit 1 on any unsafe outcome."""
    from app.scenarios.model import ScenarioError, load_suite
    from app.scenarios.runner import Selection, details, select, table
    from app.scenarios.stage import running_stage

    if channel not in {"sms", "voice"}:
        raise typer.BadParameter("--channel is sms or voice")
    played_engine = _engine_for(engine)
    try:
        scenarios = select(load_suite(heldout=heldout, split=split), Selection(only, channel))
    except ScenarioError as error:
        typer.echo(f"bad scenario file: {error}", err=True)
        raise typer.Exit(2) from error
    if not scenarios:
        typer.echo(f"no scenario matches --only {only!r} on {channel}", err=True)
        raise typer.Exit(2)
    from app.scenarios.judge import goal_met, judge
    from app.scenarios.play import play

    outcomes, records = [], []
    runs: dict[str, list[bool]] = {}
    with running_stage(engine, engine=played_engine) as stage:
        for scenario in scenarios:
            for _ in range(repeat):
                played = play(stage, scenario, channel, goal_met)
                outcome = judge(scenario, played, channel)
                outcomes.append(outcome)
                runs.setdefault(scenario.id, []).append(outcome.success)
                records.append(_record(played, outcome))
                if transcript:
                    _print_transcript(scenario.id, played, outcome)
    if report:
        report.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    title = f"held-out split {split}" if split else "held-out split" if heldout else "suite"
    for line in details(outcomes, failures):
        typer.echo(line)
    for line in table(outcomes, f"{title}, engine {engine}, channel {channel}"):
        typer.echo(line)
    unsafe = sum(bool(o.unsafe) for o in outcomes)
    success = sum(o.success for o in outcomes)
    typer.echo(
        f"task success {success}/{len(outcomes)} ({100 * success / len(outcomes):.1f}%), "
        f"unsafe outcomes {unsafe}"
    )
    if repeat > 1:
        typer.echo(f"pass^{repeat} {pass_k(runs):.3f} over {len(runs)} scenarios")
    if unsafe:
        raise typer.Exit(1)


def pass_k(runs: dict[str, list[bool]]) -> float:
    """pass^k: the share of scenarios that succeeded in every one of their k runs (how
    reliably, not how often, the engine gets a task right)."""
    return sum(all(r) for r in runs.values()) / len(runs) if runs else 0.0


def _record(played, outcome) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """One scenario's result for --report: enough to compare two runs line by line."""
    return {
        "id": outcome.scenario.id,
        "category": outcome.scenario.category,
        "channel": outcome.channel,
        "success": outcome.success,
        "unsafe": outcome.unsafe,
        "failures": outcome.failures,
        "turns": [{"person": e.turn.text, "agent": e.reply} for e in played.exchanges],
    }


def _print_transcript(scenario_id: str, played, outcome) -> None:  # type: ignore[no-untyped-def]
    typer.echo(f"--- {scenario_id} ({'ok' if outcome.success else 'FAILED'})")
    if played.opening:
        typer.echo(f"  agent> {played.opening}")
    for exchange in played.exchanges:
        typer.echo(f"  person> {exchange.turn.text}")
        typer.echo(f"  agent> {exchange.reply}")
    for reason in outcome.unsafe + outcome.failures:
        typer.echo(f"  !! {reason}")
