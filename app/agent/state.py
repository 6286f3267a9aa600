"""The offline engine's dialogue state: typed, and still plain JSON on the conversation row.

`DialogueState` is a TypedDict, so the state stays the dict the conversation row stores
(no second serialisation) while every key has a declared type. `load_state` is the
migration path for stored state: rows written by older versions (no "version", or
values no longer known) are upgraded or have their request in progress dropped, never
misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypedDict

STATE_VERSION = 2


class Intent(StrEnum):
    BOOK = "book"
    MOVE = "move"
    CANCEL = "cancel"


class Awaiting(StrEnum):
    """What the last reply asked for."""

    TYPE = "type"
    NAME = "name"
    CHOICE = "choice"
    CONFIRM = "confirm"
    WHICH = "which"
    WHEN = "when"
    VERIFICATION = "verification"
    INSTEAD = "instead"  # "instead of, or in addition to, your 3 PM?"


class AppointmentRef(TypedDict):
    """One of the caller's appointments as the tools list it."""

    id: str
    start: str
    end: str
    type: str
    type_name: str


class DialogueState(TypedDict, total=False):
    version: int
    lang: str  # "en" | "es": the language of this conversation
    intent: Intent
    type: str
    day: str  # ISO date
    at: str  # "HH:MM"
    part: str  # morning | afternoon | evening
    after: str  # "HH:MM": only times after
    before: str  # "HH:MM": only times before
    until: str  # ISO date: last day of a range
    offers: list[str]  # ISO local datetimes just offered
    proposal: str  # the ISO local datetime awaiting a yes
    awaiting: Awaiting
    target: AppointmentRef  # the appointment being moved or cancelled
    targets: list[AppointmentRef]  # "cancel all"
    candidates: list[AppointmentRef]
    held: AppointmentRef  # the caller's appointment on the day asked about
    held_start: str
    shift: int | str  # minutes, or "earlier" / "later"
    move_to: str
    queued: str  # the second request of a two-request message
    queued_day: str  # ISO date: the day the first request named, which the rest keeps
    name: str
    last: str  # id of the appointment booked or moved last
    served: bool
    pending_text: str
    verification_required: bool
    # Streamed voice: the caller cut in before the confirmation question was played, so
    # a yes cannot answer it; cleared when the question is said again in full.
    confirm_unheard: bool


# Keys that describe the request in progress; the rest outlive it.
FLOW_KEYS: tuple[str, ...] = (
    "intent",
    "type",
    "day",
    "at",
    "part",
    "offers",
    "proposal",
    "awaiting",
    "target",
    "candidates",
    "move_to",
    "pending_text",
    "verification_required",
    "after",
    "before",
    "until",
    "held",
    "targets",
    "shift",
    "held_start",
    "confirm_unheard",
)
KNOWN_KEYS = frozenset(DialogueState.__annotations__)
# Set by whoever opens a conversation about one appointment (a reminder, its reply or
# call): the appointment the next message most likely means.
ABOUT_APPOINTMENT = "about_appointment"


def load_state(stored: Mapping[str, Any] | None) -> DialogueState:
    """Stored JSON → the current state. Version 1 (no "version") had the same keys with
    plain strings; unknown keys are dropped, and a request whose intent or awaited
    answer is no longer known is dropped as a whole rather than guessed at."""
    state: dict[str, Any] = {k: v for k, v in (stored or {}).items() if k in KNOWN_KEYS}
    about = (stored or {}).get(ABOUT_APPOINTMENT)
    if about:
        # A reminder's reply (app/notifications/replies.py): "cancel", "move it" with no
        # other reference mean the reminded appointment, as "last" does.
        state["last"] = about
    try:
        if "intent" in state and state["intent"] is not None:
            state["intent"] = Intent(state["intent"])
        if "awaiting" in state and state["awaiting"] is not None:
            state["awaiting"] = Awaiting(state["awaiting"])
    except ValueError:
        for key in FLOW_KEYS:
            state.pop(key, None)
    state["version"] = STATE_VERSION
    return state  # type: ignore[return-value]


def dump_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON the conversation row stores (StrEnums are already strings)."""
    return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in state.items()}
