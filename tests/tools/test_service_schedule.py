from __future__ import annotations

from dataclasses import replace
from datetime import time

from sqlalchemy.orm import Session

from app.demo import DemoData
from app.models import Agent
from app.routing import Route, route
from app.tools.service import schedule_for
from app.turn_rows import AgentView, parsed_json

STRANGER = "+14155550999"


def _view(session: Session, demo: DemoData) -> AgentView:
    routed = route(session, STRANGER, demo.dedicated_line)
    assert isinstance(routed, Route) and isinstance(routed.agent, AgentView)
    return routed.agent


def test_a_turns_view_finds_the_schedule_of_its_shared_settings(
    session: Session, demo: DemoData
) -> None:
    first, second = _view(session, demo), _view(session, demo)
    assert first is not second and first.weekly_hours is second.weekly_hours
    schedule = schedule_for(first)
    assert schedule_for(second) is schedule
    entity = session.get(Agent, demo.agent_id)
    assert entity is not None
    assert schedule_for(entity) == schedule  # the entity's own path builds the same


def test_other_settings_are_another_schedule(session: Session, demo: DemoData) -> None:
    view = _view(session, demo)
    schedule = schedule_for(view)
    # Equal hours in another object (an edit parsed from other text): built again, equal.
    hours = parsed_json('{"mon": [["09:00", "12:00"]]}')
    edited = replace(view, weekly_hours=hours)
    assert schedule_for(edited) != schedule
    assert schedule_for(edited).hours == {0: [(time(9), time(12))]}
    for field, value in (
        ("timezone", "Europe/Madrid"),
        ("slot_step_minutes", 30),
        ("min_notice_minutes", 0),
        ("horizon_days", 7),
        ("daily_cap", 2),
        ("appointment_types", [{"key": "x", "name": "X", "duration_minutes": 20}]),
    ):
        changed = schedule_for(replace(view, **{field: value}))
        assert changed != schedule, field
        assert schedule_for(view) is schedule
