"""Scenarios as data: the YAML files under tests/scenarios/ and what one scenario holds.

A file has `defaults` (merged under each scenario) and `scenarios`. Profiles live in
tests/scenarios/profiles.yaml and are named by key, or given inline (`base:` extends one).
Times are local wall-clock times in the agent's zone, "YYYY-MM-DD HH:MM".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from app.config import PROJECT_ROOT

SUITE_DIR = PROJECT_ROOT / "tests" / "scenarios"
HELDOUT = "heldout2"  # the first split (studied) is now part of the suite
CATEGORIES = (
    "booking",
    "typos",
    "availability",
    "move",
    "cancel",
    "corrections",
    "list",
    "out_of_policy",
    "multi_intent",
    "chatty",
    "faq",
    "spanish",
)
EXPECT_KINDS = {
    "booked",
    "cancelled",
    "moved",
    "past",
    "horizon",
    "closed",
    "asks_day",
    "unavailable",
}
SCENARIO_KEYS = {
    "id",
    "category",
    "now",
    "profile",
    "calendar",
    "say",
    "accept",
    "restate",
    "person",
    "expect",
    "channels",
    "intent",
    "note",
}


class ScenarioError(ValueError):
    """A scenario file that cannot be played; the message names the file and scenario."""


@dataclass(frozen=True)
class Turn:
    text: str
    confirms: bool = False  # {confirm: text}: the person explicitly says yes to the proposal
    unclear: bool = False  # its date cannot be read (or is past/too far): never to be guessed
    restates: bool = False  # the policy repeating what the person wants


@dataclass(frozen=True)
class Booking:
    who: str  # "caller" or "other"
    at: datetime  # aware, agent's zone
    type: str | None
    status: str = "confirmed"
    name: str | None = None


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime


@dataclass
class Expect:
    appointments: list[Booking]
    must: list[str] = field(default_factory=list)
    must_not: list[str] = field(default_factory=list)
    says: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    id: str
    category: str
    source: str
    now: datetime
    profile: dict[str, Any]
    calendar: list[Booking]
    busy: list[Busy]
    turns: list[Turn]
    accept: list[datetime]
    restate: str | None
    person: dict[str, str]
    expect: Expect
    channels: tuple[str, ...] = ("sms", "voice")
    intent: str | None = None
    heldout: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.profile["timezone"])

    @property
    def language(self) -> str:
        return str(self.profile.get("language", "en-US"))


def _moment(value: Any, zone: ZoneInfo, where: str) -> datetime:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M").replace(tzinfo=zone)
    except ValueError as error:
        raise ScenarioError(f"{where}: {value!r} is not 'YYYY-MM-DD HH:MM'") from error


def _profile(value: Any, profiles: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"base": value}
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: profile must be a name or a mapping")
    base = value.get("base")
    if base is not None and base not in profiles:
        raise ScenarioError(f"{where}: unknown profile {base!r}")
    merged = {**(profiles[base] if base else {}), **value}
    merged.pop("base", None)
    if "timezone" not in merged:
        raise ScenarioError(f"{where}: profile has no timezone")
    return merged


def _turn(value: Any, where: str) -> Turn:
    if isinstance(value, str):
        return Turn(value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, text),) = value.items()
        if kind == "confirm":
            return Turn(str(text), confirms=True)
        if kind == "unclear":
            return Turn(str(text), unclear=True)
    raise ScenarioError(f"{where}: a turn is a string, {{confirm: text}} or {{unclear: text}}")


def _booking(value: dict[str, Any], zone: ZoneInfo, where: str) -> Booking:
    who = value.get("who", "caller")
    if who not in {"caller", "other"}:
        raise ScenarioError(f"{where}: who is caller or other, not {who!r}")
    status = value.get("status", "confirmed")
    if status not in {"confirmed", "cancelled"}:
        raise ScenarioError(f"{where}: status is confirmed or cancelled")
    return Booking(
        who, _moment(value.get("at"), zone, where), value.get("type"), status, value.get("name")
    )


def _expected(
    value: dict[str, Any], calendar: list[Booking], zone: ZoneInfo, where: str
) -> list[Booking]:
    """`appointments:` lists the end state in full; otherwise it is the starting calendar
    with `add:` bookings, `cancel:` times of the caller's cancelled and `move:` [from, to]."""
    if "appointments" in value:
        return [_booking(b, zone, where) for b in value["appointments"] or []]
    cancel = {_moment(at, zone, where) for at in value.get("cancel") or []}
    moves = {_moment(a, zone, where): _moment(b, zone, where) for a, b in value.get("move") or []}
    result = []
    for booking in calendar:
        mine = booking.who == "caller" and booking.status == "confirmed"
        if mine and booking.at in cancel:
            booking = replace(booking, status="cancelled")
            cancel.discard(booking.at)
        elif mine and booking.at in moves:
            booking = replace(booking, at=moves.pop(booking.at))
        result.append(booking)
    if cancel or moves:
        raise ScenarioError(f"{where}: expect names a time the caller holds no appointment at")
    return result + [_booking(b, zone, where) for b in value.get("add") or []]


def _expect(value: Any, calendar: list[Booking], zone: ZoneInfo, where: str) -> Expect:
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: expect is a mapping")
    unknown_keys = set(value) - {
        "appointments",
        "add",
        "cancel",
        "move",
        "must",
        "must_not",
        "says",
    }
    if unknown_keys:
        raise ScenarioError(f"{where}: unknown expect keys {sorted(unknown_keys)}")
    kinds = [*value.get("must", []), *value.get("must_not", [])]
    unknown = set(kinds) - EXPECT_KINDS
    if unknown:
        raise ScenarioError(f"{where}: unknown claim kinds {sorted(unknown)}")
    says = value.get("says", [])
    return Expect(
        _expected(value, calendar, zone, where),
        list(value.get("must", [])),
        list(value.get("must_not", [])),
        [says] if isinstance(says, str) else list(says),
    )


def build(
    raw: dict[str, Any], profiles: dict[str, dict[str, Any]], source: str, heldout: bool
) -> Scenario:
    where = f"{source}:{raw.get('id', '?')}"
    unknown = set(raw) - SCENARIO_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    if raw.get("category") not in CATEGORIES:
        raise ScenarioError(f"{where}: category must be one of {', '.join(CATEGORIES)}")
    profile = _profile(raw.get("profile"), profiles, where)
    zone = ZoneInfo(profile["timezone"])
    calendar = raw.get("calendar") or []
    bookings = [_booking(b, zone, where) for b in calendar if "busy" not in b]
    turns = [_turn(t, where) for t in raw.get("say") or []]
    if not turns:
        raise ScenarioError(f"{where}: no turns (say)")
    return Scenario(
        id=str(raw["id"]),
        category=raw["category"],
        source=source,
        now=_moment(raw.get("now"), zone, where),
        profile=profile,
        calendar=bookings,
        busy=[
            Busy(_moment(b["busy"], zone, where), _moment(b["until"], zone, where))
            for b in calendar
            if "busy" in b
        ],
        turns=turns,
        accept=[_moment(a, zone, where) for a in raw.get("accept") or []],
        restate=raw.get("restate"),
        person={"name": "Jordan Pike", **(raw.get("person") or {})},
        expect=_expect(raw.get("expect") or {}, bookings, zone, where),
        channels=tuple(raw.get("channels") or ("sms", "voice")),
        intent=raw.get("intent"),
        heldout=heldout,
    )


def _merge(defaults: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **raw}
    if isinstance(defaults.get("person"), dict) and isinstance(raw.get("person"), dict):
        merged["person"] = {**defaults["person"], **raw["person"]}
    return merged


def load_file(path: Path, profiles: dict[str, dict[str, Any]], heldout: bool) -> list[Scenario]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path.name}: not valid YAML: {error}") from error
    defaults = data.get("defaults") or {}
    source = path.name
    return [build(_merge(defaults, raw), profiles, source, heldout) for raw in data["scenarios"]]


def load_suite(
    root: Path = SUITE_DIR, heldout: bool = False, split: str | None = None
) -> list[Scenario]:
    """Every scenario of the suite, of the held-out split, or of another held-out folder
    (`split`, e.g. "heldout2"); ids are unique within what is loaded."""
    try:
        profiles = yaml.safe_load((root / "profiles.yaml").read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ScenarioError(f"profiles.yaml: not valid YAML: {error}") from error
    if split is not None:
        heldout = True
    folder = root / (split or HELDOUT) if heldout else root
    scenarios = [
        scenario
        for path in sorted(folder.glob("*.yaml"))
        if path.name != "profiles.yaml"
        for scenario in load_file(path, profiles, heldout)
    ]
    seen: set[str] = set()
    for scenario in scenarios:
        if scenario.id in seen:
            raise ScenarioError(f"{scenario.source}: duplicate scenario id {scenario.id!r}")
        seen.add(scenario.id)
    return scenarios
