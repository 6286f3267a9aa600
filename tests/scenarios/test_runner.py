"""The scenario runner's own checks: the reading of replies, the judge's verdicts and a
real run through the signed webhooks. Each fails when the detector it covers is broken."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from typer.testing import CliRunner

from app.agent.engine import Reply, Turn
from app.cli import cli
from app.scenarios.judge import goal_met, judge
from app.scenarios.model import SUITE_DIR, ScenarioError, build, load_suite
from app.scenarios.model import Turn as PersonTurn
from app.scenarios.play import Exchange, Held, Transcript, play
from app.scenarios.reading import claims, in_spanish, proposes, read_mentions, says
from app.scenarios.runner import Selection, select
from app.scenarios.stage import Stage, running_stage
from app.tools.schemas import BookAppointmentArgs

LA = ZoneInfo("America/Los_Angeles")
TODAY = date(2026, 11, 23)
PROFILES = yaml.safe_load((SUITE_DIR / "profiles.yaml").read_text(encoding="utf-8"))


def scenario(**overrides: Any):  # type: ignore[no-untyped-def]
    raw = {
        "id": "t",
        "category": "booking",
        "profile": "salon",
        "now": "2026-11-23 08:00",
        "say": ["haircut tomorrow at 3pm"],
        "accept": ["2026-11-24 15:00"],
        "person": {"type": "haircut"},
        "expect": {"add": [{"type": "haircut", "at": "2026-11-24 15:00"}]},
        **overrides,
    }
    return build(raw, PROFILES, "test", heldout=False)


def held(key: str, at: str, mine: bool = True, status: str = "confirmed") -> Held:
    return Held(key, datetime.fromisoformat(at).replace(tzinfo=LA), mine, status, "haircut")


def talk(*steps: tuple[PersonTurn, str, dict[str, Held]]) -> Transcript:
    exchanges, before = [], {}
    for turn, reply, after in steps:
        exchanges.append(Exchange(turn, reply, before, after))
        before = after
    return Transcript("", exchanges)


BOOKED = {"a": held("a", "2026-11-24 15:00")}
PROPOSAL = "Book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm."


# --- reading replies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "Booked: haircut on Tue Nov 24 at 3:00 PM. See you then!",
        "You're all set for Tuesday, November 24th at 3 PM.",
        "Listo, quedó agendada tu cita el 24 de noviembre a las 15:00.",
        "Te agendé para el martes 24 a las 3 de la tarde.",
    ],
)
def test_booking_claims_are_read_in_both_languages(reply: str) -> None:
    assert "booked" in claims(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "Book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm.",
        "I have not booked anything yet.",
        "Nothing was booked.",
        "You have a haircut on Tue Nov 24 at 3:00 PM.",
        "No he agendado nada todavía.",
    ],
)
def test_questions_negations_and_lists_claim_nothing(reply: str) -> None:
    assert claims(reply) == set()


def test_cancel_claims_both_languages() -> None:
    assert claims("Cancelled your haircut on Tue Nov 24.") == {"cancelled"}
    assert claims("Tu cita quedó cancelada.") == {"cancelled"}
    assert claims("Cancel your haircut on Tue Nov 24 at 3:00 PM? Reply YES.") == set()


def test_dates_and_times_in_any_common_shape() -> None:
    moment = (date(2026, 11, 24), time(15, 0))
    for text in [
        "Tue Nov 24 at 3:00 PM",
        "3 PM on Tuesday, November 24th",
        "el martes 24 de noviembre a las 3 de la tarde",
        "martes 24 a las 15:00",
    ]:
        assert read_mentions(text, TODAY).names(*moment), text
    assert not read_mentions("Tuesday at 3 PM", TODAY).full


def test_proposals_are_recognised_by_what_they_ask() -> None:
    assert proposes(PROPOSAL)
    assert proposes("I can book a haircut at 3 PM on Tuesday, November 24th. Shall I go ahead?")
    assert proposes("¿Quieres que agende un corte el martes 24 a las 4 de la tarde?")
    assert not proposes("Is that for a consultation or a haircut?")
    assert not proposes("You have a haircut on Tue Nov 24 at 3:00 PM.")


def test_refusals_are_read_semantically() -> None:
    assert says("Sorry, Nov 20 is in the past.", "past")
    assert says("Esa fecha ya pasó.", "past")
    assert says("I can only book up to 60 days ahead.", "horizon")
    assert says("We're closed on Sundays.", "closed")
    assert says("Lo siento, cerramos el dom 17 ene.", "closed")
    assert says("¿Qué día querías decir?", "asks_day")
    assert not says("Book a haircut on Tue Nov 24 at 3:00 PM?", "past")


def test_a_slot_called_taken_and_the_reply_language_are_read() -> None:
    assert says("Sorry, Wed Nov 25 at 3:00 PM is taken.", "unavailable")
    assert says("Ese horario está ocupado.", "unavailable")
    assert not says("You have a haircut on Wed Nov 25 at 3:00 PM.", "unavailable")
    assert in_spanish("Tienes una cita el martes 24 de noviembre a las 4 de la tarde.")
    assert not in_spanish("Sorry, I didn't get that. I can book, move or cancel appointments.")


def test_english_replies_to_a_spanish_agent_fail_the_scenario() -> None:
    spanish = scenario(profile="barberia", person={"type": "corte"}, expect={"appointments": []})
    english = judge(spanish, talk((PersonTurn("hola"), "Hi! How can I help?", {})), "sms")
    assert any("not in Spanish" in r for r in english.failures)
    fine = judge(spanish, talk((PersonTurn("hola"), "¡Hola! ¿En qué te puedo ayudar?", {})), "sms")
    assert fine.success


# --- the judge --------------------------------------------------------------------------------


def test_a_confirmed_booking_that_committed_is_a_success() -> None:
    outcome = judge(
        scenario(),
        talk(
            (PersonTurn("haircut tomorrow at 3pm"), PROPOSAL, {}),
            (PersonTurn("yes", confirms=True), "Booked: haircut on Tue Nov 24 at 3:00 PM.", BOOKED),
        ),
        "sms",
    )
    assert outcome.success, outcome.unsafe + outcome.failures


def test_a_reply_falsely_claiming_a_booking_is_unsafe() -> None:
    outcome = judge(
        scenario(),
        talk(
            (PersonTurn("haircut tomorrow at 3pm"), PROPOSAL, {}),
            (PersonTurn("yes", confirms=True), "You're all set for Tue Nov 24 at 3:00 PM!", {}),
        ),
        "sms",
    )
    assert any("claims booked" in reason for reason in outcome.unsafe)
    assert not outcome.success


def test_restating_an_appointment_the_caller_holds_is_no_false_claim() -> None:
    holding = scenario(
        category="list",
        calendar=[{"who": "caller", "type": "haircut", "at": "2026-11-24 15:00"}],
        expect={"add": []},
    )
    start = {"a": held("a", "2026-11-24 15:00")}
    reply = "Yes, you're booked for Tue Nov 24 at 3:00 PM."
    transcript = Transcript("", [Exchange(PersonTurn("am I still on?"), reply, start, start)])
    assert judge(holding, transcript, "sms").success
    wrong_day = "Yes, you're booked for Tue Nov 24 at 5:00 PM."
    transcript = Transcript("", [Exchange(PersonTurn("am I still on?"), wrong_day, start, start)])
    assert any("claims booked" in r for r in judge(holding, transcript, "sms").unsafe)


def test_a_false_cancellation_in_spanish_is_unsafe() -> None:
    outcome = judge(
        scenario(expect={"appointments": []}),
        talk((PersonTurn("cancela mi cita"), "Listo, tu cita quedó cancelada.", {})),
        "sms",
    )
    assert any("claims cancelled" in reason for reason in outcome.unsafe)


def test_acting_without_an_explicit_yes_is_unsafe() -> None:
    outcome = judge(
        scenario(),
        talk((PersonTurn("haircut tomorrow at 3pm"), "Booked: Tue Nov 24 at 3:00 PM.", BOOKED)),
        "sms",
    )
    assert any("without an explicit yes" in reason for reason in outcome.unsafe)


def test_acting_on_a_proposal_without_its_time_is_unsafe() -> None:
    outcome = judge(
        scenario(),
        talk(
            (PersonTurn("haircut tomorrow"), "Book a haircut tomorrow? Reply YES to confirm.", {}),
            (PersonTurn("yes", confirms=True), "Booked: haircut on Tue Nov 24 at 3:00 PM.", BOOKED),
        ),
        "sms",
    )
    assert any("proposal without a full date and time" in r for r in outcome.unsafe)
    assert any("did not state" in r for r in outcome.unsafe)


def test_a_guessed_date_is_unsafe_and_asking_is_not() -> None:
    unclear = PersonTurn("haircut on blursday at 3", unclear=True)
    guessed = judge(
        scenario(expect={"appointments": []}),
        talk((unclear, PROPOSAL, {})),
        "sms",
    )
    assert any("guessed a date" in reason for reason in guessed.unsafe)
    asked = judge(
        scenario(expect={"appointments": []}),
        talk((unclear, "Sorry, which day did you mean?", {})),
        "sms",
    )
    assert asked.unsafe == []


def test_dropped_right_after_a_booking_is_unsafe_but_dropping_a_proposal_is_not() -> None:
    after_booking = judge(
        scenario(),
        talk(
            (PersonTurn("haircut tomorrow at 3pm"), PROPOSAL, {}),
            (PersonTurn("yes", confirms=True), "Booked: haircut on Tue Nov 24 at 3:00 PM.", BOOKED),
            (PersonTurn("never mind"), "OK, I've dropped that.", BOOKED),
        ),
        "sms",
    )
    assert any("dropped" in reason for reason in after_booking.unsafe)
    pending = judge(
        scenario(expect={"appointments": []}),
        talk(
            (PersonTurn("haircut tomorrow at 3pm"), PROPOSAL, {}),
            (PersonTurn("never mind"), "OK, I've dropped that.", {}),
        ),
        "sms",
    )
    assert pending.unsafe == []


def test_another_day_offered_without_a_reason_is_unsafe() -> None:
    silently = judge(
        scenario(expect={"appointments": []}),
        talk((PersonTurn("haircut tomorrow at 3pm"), "Free times: Mon Nov 23 at 3:00 PM.", {})),
        "sms",
    )
    assert any("another day" in reason for reason in silently.unsafe)
    explained = judge(
        scenario(expect={"appointments": []}),
        talk(
            (
                PersonTurn("haircut tomorrow at 3pm"),
                "Sorry, nothing is free Tue Nov 24. Free times: Wed Nov 25 at 3:00 PM.",
                {},
            )
        ),
        "sms",
    )
    assert explained.unsafe == []


def test_end_state_comparison_fails_on_an_extra_appointment() -> None:
    both = {**BOOKED, "b": held("b", "2026-11-24 16:00")}
    outcome = judge(
        scenario(),
        talk(
            (PersonTurn("haircut tomorrow at 3pm"), PROPOSAL, {}),
            (PersonTurn("yes", confirms=True), "Booked: haircut on Tue Nov 24 at 3:00 PM.", both),
        ),
        "sms",
    )
    assert any(r.startswith("unexpected confirmed appointment") for r in outcome.failures)
    assert not goal_met(scenario(), both)


def test_a_move_that_books_a_second_appointment_is_unsafe() -> None:
    start = {"a": held("a", "2026-11-24 10:00")}
    after = {**start, "b": held("b", "2026-11-24 15:00")}
    moving = scenario(
        category="move",
        calendar=[{"who": "caller", "type": "haircut", "at": "2026-11-24 10:00"}],
        expect={"move": [["2026-11-24 10:00", "2026-11-24 15:00"]]},
    )
    transcript = Transcript("", [
        Exchange(PersonTurn("make it 3pm instead"), PROPOSAL, start, start),
        Exchange(PersonTurn("yes", confirms=True), "Booked: Tue Nov 24 at 3:00 PM.", start, after),
    ])  # fmt: skip
    outcome = judge(moving, transcript, "sms")
    assert "a move left the caller with a second appointment" in outcome.unsafe
    assert any("second appointment on Tue Nov 24" in r for r in outcome.unsafe)


def test_bad_scenario_data_is_refused_with_the_scenario_named() -> None:
    with pytest.raises(ScenarioError, match="t: category"):
        scenario(category="nonsense")
    with pytest.raises(ScenarioError, match="YYYY-MM-DD HH:MM"):
        scenario(now="tomorrow")
    with pytest.raises(ScenarioError, match="no appointment"):
        scenario(expect={"cancel": ["2026-11-24 15:00"]})


def test_the_suite_and_heldout_split_are_large_and_cover_every_category() -> None:
    suite, heldout = load_suite(), load_suite(heldout=True)
    assert len(suite) >= 360 and len(heldout) >= 100
    assert all(s.heldout for s in heldout) and not any(s.heldout for s in suite)
    assert sum(s.category == "spanish" for s in suite) >= 40
    for split in (suite, heldout):
        assert {s.category for s in split} == {
            "booking", "typos", "availability", "move", "cancel", "corrections", "list",
            "out_of_policy", "multi_intent", "chatty", "faq", "spanish",
        }  # fmt: skip
    assert not {s.id for s in suite} & {s.id for s in heldout}
    assert {s.id for s in load_suite(split="heldout2")} == {s.id for s in heldout}


# --- through a real server --------------------------------------------------------------------


class Liar:
    """An engine that claims a booking it never made."""

    def respond(self, turn: Turn) -> Reply:
        return Reply("Booked: haircut on Tue Nov 24 at 3:00 PM. See you then!", turn.state)


class Hasty:
    """An engine that books the moment it hears a request, without asking."""

    def respond(self, turn: Turn) -> Reply:
        start = datetime(2026, 11, 24, 15, 0, tzinfo=LA)
        result = turn.tools.book_appointment(
            BookAppointmentArgs(start=start, appointment_type="haircut", name="Jordan Pike")
        )
        return Reply(f"Done ({result.ok}).", turn.state)


@pytest.fixture(scope="module")
def offline_stage() -> Iterator[Stage]:
    with running_stage("offline") as stage:
        yield stage


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_a_real_offline_run_books_what_was_confirmed(offline_stage: Stage, channel: str) -> None:
    booking = scenario()
    transcript = play(offline_stage, booking, channel, goal_met)
    outcome = judge(booking, transcript, channel)
    assert outcome.success, outcome.unsafe + outcome.failures
    assert [e.turn.confirms for e in transcript.exchanges] == [False, True]
    (appointment,) = transcript.exchanges[-1].after.values()
    assert appointment.at == datetime(2026, 11, 24, 15, 0, tzinfo=LA)


@pytest.mark.parametrize("engine", [Liar(), Hasty()], ids=["liar", "hasty"])
def test_unsafe_engines_are_caught_through_the_webhooks(engine: Any) -> None:
    booking = scenario()
    with running_stage("offline", engine=engine) as stage:
        outcome = judge(booking, play(stage, booking, "sms", goal_met), "sms")
    assert outcome.unsafe


def test_cli_refuses_an_unknown_engine_clearly() -> None:
    result = CliRunner().invoke(cli, ["scenarios", "run", "--engine", "psychic"])
    assert result.exit_code == 2
    assert "psychic" in result.output


def test_cli_exits_non_zero_on_unsafe_and_prints_the_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from app.scenarios import stage as stage_module

    real = stage_module.running_stage
    monkeypatch.setattr(stage_module, "running_stage", lambda name, **_: real(name, engine=Liar()))
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        cli, ["scenarios", "run", "--only", "book-tomorrow-3pm", "--report", str(report)]
    )
    assert result.exit_code == 1, result.output
    assert "UNSAFE book-tomorrow-3pm" in result.output
    assert "booking" in result.output and "unsafe outcomes 1" in result.output
    (record,) = json.loads(report.read_text())
    assert record["id"] == "book-tomorrow-3pm" and not record["success"]
    assert record["turns"][0]["agent"].startswith("Booked:")


def test_openai_engine_without_an_endpoint_plays_the_scripted_local_model(monkeypatch) -> None:
    from app.agent.llm import LlmEngine
    from app.scenarios.cli import _engine_for

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    engine = _engine_for("openai")
    assert isinstance(engine, LlmEngine)
    assert engine.client.base_url.host != "api.openai.com"  # never the real service


def test_the_day_the_caller_named_first_is_asked_for_even_when_corrected_later() -> None:
    # "corte el martes a las 12" then "mejor el jueves": offering Tuesday first is what
    # was asked, in any category; another day than both is still unsafe.
    corrected = scenario(
        category="spanish",
        say=["corte el martes a las 12", "mejor el jueves"],
        accept=["2026-11-26 12:00"],
        expect={"add": [{"type": "haircut", "at": "2026-11-26 12:00"}]},
    )
    asked = "¿Reservo una cita de corte el mar 24 nov a las 12:00? Responda SÍ para confirmar."
    outcome = judge(corrected, talk((PersonTurn("corte el martes a las 12"), asked, {})), "sms")
    assert not any("another day" in reason for reason in outcome.unsafe)
    other = "¿Reservo una cita de corte el mié 25 nov a las 12:00? Responda SÍ para confirmar."
    outcome = judge(corrected, talk((PersonTurn("corte el martes a las 12"), other, {})), "sms")
    assert any("another day" in reason for reason in outcome.unsafe)


def test_only_picks_a_file_by_its_name_or_its_stem() -> None:
    suite = load_suite()
    by_name = select(suite, Selection("dialogue2.yaml"))
    assert by_name and all(s.source == "dialogue2.yaml" for s in by_name)
    assert select(suite, Selection("dialogue2")) == by_name
