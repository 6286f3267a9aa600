"""What a turn reads of its agent, as a plain read-only row instead of the ORM entity.

A turn reads its agent at every webhook (routing), never changes it, and the ORM's
loading of the entity (identity map, instance state, some twenty attributes, three JSON
columns decoded) was a visible part of its CPU. Routing selects the columns below and
builds an `AgentView`; code that changes an agent (admin API, dashboard) keeps the
entity. Consumers that serve both take `AgentLike`, which the entity satisfies too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import Label, Text, cast

from app.models import Agent


class AgentLike(Protocol):
    """An agent as the turn's code reads it: the ORM entity or an `AgentView`."""

    @property
    def id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def weekly_hours(self) -> dict[str, Any]: ...
    @property
    def appointment_types(self) -> list[dict[str, Any]]: ...
    @property
    def slot_step_minutes(self) -> int: ...
    @property
    def min_notice_minutes(self) -> int: ...
    @property
    def horizon_days(self) -> int: ...
    @property
    def daily_cap(self) -> int | None: ...
    @property
    def greeting(self) -> str: ...
    @property
    def instructions(self) -> str: ...
    @property
    def caller_id_policy(self) -> str: ...
    @property
    def pin_hash(self) -> str | None: ...
    @property
    def language(self) -> str: ...
    @property
    def voice(self) -> str | None: ...
    @property
    def address(self) -> str: ...
    @property
    def services_description(self) -> str: ...
    @property
    def faq(self) -> list[dict[str, str]]: ...
    @property
    def voice_mode(self) -> str: ...
    @property
    def calendar_provider(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AgentView:
    """The agent's row as read at this turn. Its JSON values may be shared with other
    turns that read the same text (`parsed_json`): read them, never change them."""

    id: str
    user_id: str
    name: str
    timezone: str
    weekly_hours: dict[str, Any]
    appointment_types: list[dict[str, Any]]
    slot_step_minutes: int
    min_notice_minutes: int
    horizon_days: int
    daily_cap: int | None
    greeting: str
    instructions: str
    caller_id_policy: str
    pin_hash: str | None
    language: str
    voice: str | None
    address: str
    services_description: str
    faq: list[dict[str, str]]
    voice_mode: str
    calendar_provider: str

    @classmethod
    def of(cls, agent: AgentLike) -> AgentView:
        """The view of an agent held otherwise (an entity, in a test or a tool)."""
        return cls(*(getattr(agent, name) for name in AGENT_FIELDS))


AGENT_FIELDS: tuple[str, ...] = tuple(AgentView.__dataclass_fields__)
_JSON_FIELDS = frozenset({"weekly_hours", "appointment_types", "faq"})
# Labelled so they can ride along any statement: "agent__id", "agent__name", ...
PREFIX = "agent__"
AGENT_ID_LABEL = f"{PREFIX}id"


def agent_columns() -> tuple[Label[Any], ...]:
    """The columns an `AgentView` is made of. JSON columns are read as their text (a
    cast, so PostgreSQL's driver does not decode them either) and parsed once per
    distinct text (`parsed_json`): the row is still read at every turn, so an owner's
    edit is seen at the next one."""
    return tuple(
        (cast(getattr(Agent, name), Text) if name in _JSON_FIELDS else getattr(Agent, name)).label(
            PREFIX + name
        )
        for name in AGENT_FIELDS
    )


_values_of = attrgetter(*(PREFIX + name for name in AGENT_FIELDS))
_JSON_POSITIONS = tuple(i for i, name in enumerate(AGENT_FIELDS) if name in _JSON_FIELDS)


def agent_of(row: Any) -> AgentView | None:
    """The view in a row that selected `agent_columns()`; None when its agent is NULL
    (an outer join that found none)."""
    values = list(_values_of(row))
    if values[0] is None:
        return None
    for position in _JSON_POSITIONS:
        values[position] = parsed_json(values[position])
    return AgentView(*values)


# Parsed JSON by its text. Agents are few and edited rarely, so this stays small; the
# bound only keeps a process that sees many edits from growing.
_PARSED: dict[str | None, Any] = {}
_PARSED_LIMIT = 1024


def parsed_json(text: str | None) -> Any:
    """`text` decoded, the same object for the same text (None for a NULL)."""
    found = _PARSED.get(text)
    if found is None and text is not None:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        found = _PARSED[text] = json.loads(text)
    return found
