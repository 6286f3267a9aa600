from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.calendar.backend import CalendarError
from app.demo import DemoData
from app.tools import registry
from app.tools.registry import (
    check_availability_in_process,
    list_appointments_in_process,
    run_tool,
)
from app.tools.schemas import ToolResult
from app.tools.service import FreeTimes, SchedulingTools
from tests.tools.test_service import tools_for

# What the offline engine passes (seeking.py), and what it never passes but a state
# stored by another version might hold: each must answer as run_tool does.
ARGUMENTS: list[dict[str, Any]] = [
    {"appointment_type": "consultation", "limit": 20},
    {"appointment_type": "haircut", "part_of_day": "morning", "limit": 20},
    {"date": "2026-11-24", "appointment_type": "consultation", "limit": 20},
    {"date": "2026-11-24", "appointment_type": "haircut", "part_of_day": "evening", "limit": 20},
    {"date": "2026-11-25", "appointment_type": "consultation", "part_of_day": "afternoon"},
    {
        "date": "2026-11-24",
        "appointment_type": "consultation",
        "after": "2026-11-24T12:00:00-08:00",
        "limit": 20,
    },
    {"appointment_type": "consultation", "after": "2026-11-26T00:00:00-08:00", "limit": 20},
    {"appointment_type": "consultation", "after": "2026-11-26T09:30:00", "limit": 3},
    {"date": "2026-11-29", "appointment_type": "consultation", "limit": 20},  # a Sunday
    {"date": "2026-11-23", "appointment_type": "Consultation", "limit": 1},
    {"date": "2026-11-24"},
    {},
    # Refused or read otherwise by validation: the same answer either way.
    {"date": "2026-11-24", "appointment_type": "massage", "limit": 20},
    {"date": "2026-11-24", "appointment_type": " haircut ", "limit": 20},
    {"date": "2026-11-24", "appointment_type": "haircut", "part_of_day": "night"},
    {"date": "2026-11-24", "appointment_type": "haircut", "limit": 0},
    {"date": "2026-11-24", "appointment_type": "haircut", "limit": 21},
    {"date": "2026-11-24", "appointment_type": "haircut", "limit": True},
    {"date": "2026-11-24", "appointment_type": "haircut", "limit": "20"},
    {"date": "20261124", "appointment_type": "haircut"},
    {"date": "2026-11-24T00:00:00", "appointment_type": "haircut"},
    {"date": "next tuesday", "appointment_type": "haircut"},
    {"appointment_type": "haircut", "after": "2026-11-24 13:00"},
    {"appointment_type": "haircut", "after": "2026-11-24T13:00Z"},
    {"appointment_type": "haircut", "after": "soon"},
    {"appointment_type": "haircut", "extra": 1},
    {"appointment_type": 3},
]


def _answer(found: ToolResult | FreeTimes) -> ToolResult:
    return found.result() if isinstance(found, FreeTimes) else found


@pytest.mark.parametrize("arguments", ARGUMENTS)
def test_in_process_check_answers_as_the_tool_does(
    session: Session, demo: DemoData, arguments: dict[str, Any]
) -> None:
    expected = run_tool(tools_for(session, demo), "check_availability", arguments)
    found = check_availability_in_process(tools_for(session, demo), arguments)
    assert _answer(found) == expected
    if isinstance(found, FreeTimes):
        # The times handed over are the result's, as the engine parsed them before.
        zone = tools_for(session, demo).schedule.zone
        assert found.local == [
            datetime.fromisoformat(s).astimezone(zone) for s in expected.data["slots"]
        ]
        assert [s.tzinfo for s in found.local] == [zone] * len(found.local)


def test_only_the_engines_own_forms_skip_validation(session: Session, demo: DemoData) -> None:
    tools = tools_for(session, demo)
    own = {"date": "2026-11-24", "appointment_type": "haircut", "limit": 20}
    assert isinstance(check_availability_in_process(tools, own), FreeTimes)
    for other in ({**own, "limit": 21}, {**own, "date": "20261124"}, {**own, "x": 1}):
        assert isinstance(check_availability_in_process(tools, other), ToolResult)


def test_an_unreadable_calendar_is_said_as_the_tool_says_it(
    session: Session, demo: DemoData, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: object, **__: object) -> object:
        raise CalendarError("The calendar could not be read.")

    monkeypatch.setattr(SchedulingTools, "_busy_and_counts", fail)
    arguments = {"date": "2026-11-24", "appointment_type": "haircut", "limit": 20}
    expected = run_tool(tools_for(session, demo), "check_availability", arguments)
    assert expected.data == {"error": "calendar_unavailable"}
    assert check_availability_in_process(tools_for(session, demo), arguments) == expected
    assert registry.TOOLS["check_availability"].args.__name__ == "CheckAvailabilityArgs"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("book_appointment", {"start": "9999-12-31T23:59:59+14:00"}),
        ("book_appointment", {"start": "0001-01-01T00:00:00-12:00"}),
        ("check_availability", {"date": "9999-12-31"}),
        ("check_availability", {"after": "0001-01-01T00:00:00+00:00"}),
        ("reschedule_appointment", {"appointment_id": "x", "new_start": "9999-12-31T23:00:00"}),
    ],
)
def test_a_year_out_of_range_is_refused_plainly_not_an_internal_error(
    session: Session, demo: DemoData, tool: str, arguments: dict[str, Any]
) -> None:
    result = run_tool(tools_for(session, demo), tool, arguments)
    assert not result.ok
    assert result.data == {"error": "invalid_arguments"}
    assert "between 1900 and 9000" in result.message


@pytest.mark.parametrize("verified", [True, False])
def test_in_process_list_answers_as_the_tool_does(
    session: Session, demo: DemoData, verified: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's list_appointments (no arguments) skips run_tool's parsing and
    validation of them: the same answer, with appointments, without, refused."""
    booked = run_tool(
        tools_for(session, demo), "book_appointment", {"start": "2026-11-24T10:00:00"}
    )
    assert booked.ok
    for caller in (None, "+14155550199"):  # the booking's caller, then one with none
        kw = {"may_manage_existing": verified}
        expected = run_tool(tools_for(session, demo, caller, **kw), "list_appointments", {})
        found = list_appointments_in_process(tools_for(session, demo, caller, **kw))
        assert found == expected
        assert found.data != {} and (found.ok == verified)

    def fail(*_: object, **__: object) -> object:
        raise CalendarError("The calendar could not be read.")

    monkeypatch.setattr(SchedulingTools, "_refuse_unverified", fail)
    expected = run_tool(tools_for(session, demo), "list_appointments", {})
    assert expected.data == {"error": "calendar_unavailable"}
    assert list_appointments_in_process(tools_for(session, demo)) == expected
