"""Tool names → argument schema and implementation; JSON schemas for VAPI and the LLM."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.calendar.backend import CalendarError
from app.tools.schemas import (
    BookAppointmentArgs,
    CancelAppointmentArgs,
    CheckAvailabilityArgs,
    ListAppointmentsArgs,
    RescheduleAppointmentArgs,
    ToolArgs,
    ToolResult,
)
from app.tools.service import SchedulingTools


@dataclass(frozen=True)
class ToolSpec:
    name: str
    args: type[ToolArgs]
    run: Callable[[SchedulingTools, Any], ToolResult]
    # Whether the tool reads or changes appointments the caller already has.
    touches_existing: bool = False

    @property
    def description(self) -> str:
        return (self.args.__doc__ or self.name).strip()

    def json_schema(self) -> dict[str, Any]:
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec("check_availability", CheckAvailabilityArgs, SchedulingTools.check_availability),
        ToolSpec("book_appointment", BookAppointmentArgs, SchedulingTools.book_appointment),
        ToolSpec(
            "list_appointments",
            ListAppointmentsArgs,
            SchedulingTools.list_appointments,
            touches_existing=True,
        ),
        ToolSpec(
            "cancel_appointment",
            CancelAppointmentArgs,
            SchedulingTools.cancel_appointment,
            touches_existing=True,
        ),
        ToolSpec(
            "reschedule_appointment",
            RescheduleAppointmentArgs,
            SchedulingTools.reschedule_appointment,
            touches_existing=True,
        ),
    )
}


def parse_arguments(raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Arguments arrive as a JSON string, an object, or nothing at all."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("arguments must be a JSON object")
        return value
    return dict(raw)


def run_tool(
    tools: SchedulingTools, name: str, raw_args: str | Mapping[str, Any] | None
) -> ToolResult:
    spec = TOOLS.get(name)
    if spec is None:
        return ToolResult(
            ok=False,
            message=f"Unknown tool {name!r}. Known: {', '.join(TOOLS)}.",
            data={"error": "unknown_tool"},
        )
    try:
        args = spec.args.model_validate(parse_arguments(raw_args))
    except (ValueError, ValidationError) as exc:
        return ToolResult(
            ok=False,
            message=f"Invalid arguments for {name}: {_first_error(exc)}",
            data={"error": "invalid_arguments"},
        )
    try:
        return spec.run(tools, args)
    except CalendarError as exc:
        # The external calendar could not be read: say so plainly, book nothing.
        return ToolResult(ok=False, message=str(exc), data={"error": "calendar_unavailable"})


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        return f"{where}: {error['msg']}"
    return str(exc).splitlines()[0]


def function_definitions() -> list[dict[str, Any]]:
    """OpenAI-style function definitions, also what VAPI's function tools take."""
    return [
        {"name": spec.name, "description": spec.description, "parameters": spec.json_schema()}
        for spec in TOOLS.values()
    ]
