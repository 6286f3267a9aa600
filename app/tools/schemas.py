"""Argument schemas of the scheduling tools: one definition for VAPI, the LLM and REST."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ToolArgs(BaseModel):
    # Models send extra keys now and then; ignore them rather than fail the call.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class CheckAvailabilityArgs(ToolArgs):
    """Find free appointment times on a day (or the next days with room)."""

    date: dt.date | None = Field(
        None, description="Day to search, YYYY-MM-DD in the agent's time zone; default: soonest"
    )
    appointment_type: str | None = Field(
        None, description="Appointment type key or name; default: the agent's first type"
    )
    part_of_day: Literal["morning", "afternoon", "evening"] | None = Field(
        None, description="Only times in this part of the day"
    )
    after: dt.datetime | None = Field(None, description="Only times after this moment (ISO 8601)")
    limit: int = Field(5, ge=1, le=20, description="How many times to return at most (1 to 20)")


class BookAppointmentArgs(ToolArgs):
    """Book an appointment for the caller at a free time."""

    start: dt.datetime = Field(
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
    new_start: dt.datetime = Field(
        ..., description="New start, ISO 8601; without an offset it is read in the agent's zone"
    )


class ToolResult(BaseModel):
    ok: bool
    # One line for a model or a voice platform to read.
    message: str
    data: dict[str, Any] = Field(default_factory=dict)

    def one_line(self) -> str:
        return " ".join(self.message.split())
