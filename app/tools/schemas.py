"""Argument schemas of the scheduling tools: one definition for VAPI, the LLM and REST."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# The days a tool can reason about. Its window arithmetic (a day either side of a slot,
# two weeks of search) then stays inside datetime's range, and a year outside is a
# misreading to refuse plainly, not an internal error.
EARLIEST_DAY, LATEST_DAY = dt.date(1900, 1, 1), dt.date(9000, 12, 31)


def _plausible(value: Any) -> Any:
    day = value.date() if isinstance(value, dt.datetime) else value
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError("the year must be between 1900 and 9000")
    return value


ToolDate = Annotated[dt.date, AfterValidator(_plausible)]
ToolMoment = Annotated[dt.datetime, AfterValidator(_plausible)]


class ToolArgs(BaseModel):
    # Models send extra keys now and then; ignore them rather than fail the call.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class CheckAvailabilityArgs(ToolArgs):
    """Find free appointment times on a day (or the next days with room)."""

    date: ToolDate | None = Field(
        None, description="Day to search, YYYY-MM-DD in the agent's time zone; default: soonest"
    )
    appointment_type: str | None = Field(
        None, description="Appointment type key or name; default: the agent's first type"
    )
    part_of_day: Literal["morning", "afternoon", "evening"] | None = Field(
        None, description="Only times in this part of the day"
    )
    after: ToolMoment | None = Field(None, description="Only times after this moment (ISO 8601)")
    limit: int = Field(5, ge=1, le=20, description="How many times to return at most (1 to 20)")


class BookAppointmentArgs(ToolArgs):
    """Book an appointment for the caller at a free time."""

    start: ToolMoment = Field(
        ..., description="Start, ISO 8601; without an offset it is read in the agent's zone"
    )
    appointment_type: str | None = Field(None, description="Appointment type key or name")
    name: str | None = Field(None, max_length=200, description="The caller's name")
    notes: str | None = Field(None, max_length=1000, description="Anything the owner should know")
    # No idempotency key here: keys are the server's alone (the toolCallId, or derived
    # from the turn), never something a model may set or copy from another caller.


class ListAppointmentsArgs(ToolArgs):
    """List the caller's upcoming appointments with this agent."""

    include_past: bool = Field(False, description="Also list appointments already over")


class CancelAppointmentArgs(ToolArgs):
    """Cancel one of the caller's appointments."""

    appointment_id: str = Field(..., max_length=64, description="Id from list_appointments")


class RescheduleAppointmentArgs(ToolArgs):
    """Move one of the caller's appointments to a new free time."""

    appointment_id: str = Field(..., max_length=64, description="Id from list_appointments")
    new_start: ToolMoment = Field(
        ..., description="New start, ISO 8601; without an offset it is read in the agent's zone"
    )


class ToolResult(BaseModel):
    ok: bool
    # One line for a model or a voice platform to read.
    message: str
    data: dict[str, Any] = Field(default_factory=dict)

    def one_line(self) -> str:
        return " ".join(self.message.split())
