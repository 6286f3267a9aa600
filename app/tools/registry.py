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
from app.tools.service import FreeTimes, SchedulingTools


@dataclass(frozen=True)
class ToolSpec:
    name: str
    args: type[ToolArgs]
    run: Callable[..., ToolResult]
    # Whether the tool reads or changes appointments the caller already has.
    touches_existing: bool = False
    # Whether the tool takes the server's request key (it books, so a retry must not).
    keyed: bool = False

    @property
    def description(self) -> str:
        return (self.args.__doc__ or self.name).strip()

    def json_schema(self) -> dict[str, Any]:
        """The arguments as the JSON Schema subset VAPI (and OpenAI) accept."""
        schema = self.args.model_json_schema()
        properties = {name: portable(prop) for name, prop in schema["properties"].items()}
        published: dict[str, Any] = {"type": "object", "properties": properties}
        if schema.get("required"):
            published["required"] = list(schema["required"])
        return published


# The keys of VAPI's `JsonSchema` (its published OpenAPI); its API refuses any other.
PORTABLE_KEYS = ("type", "items", "properties", "required", "enum", "format", "description")
# pydantic writes "date-time" for datetimes, but the tools also take a local time without
# an offset (read in the agent's zone), which that format would forbid.
PORTABLE_FORMATS = {"date"}


def portable(prop: dict[str, Any]) -> dict[str, Any]:
    """One property in VAPI's JSON Schema subset: every property has a `type`.

    pydantic writes an optional field as `anyOf: [X, {type: null}]`; VAPI requires `type`
    on each property, so an optional field is X itself, left out of `required` (the tools
    treat a missing value as None). Bounds and defaults are not in VAPI's subset: the
    server checks them and answers with the reason.
    """
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        prop = {**variants[0], **{k: v for k, v in prop.items() if k != "anyOf"}}
    out = {key: prop[key] for key in PORTABLE_KEYS if key in prop}
    if out.get("format") not in PORTABLE_FORMATS:
        out.pop("format", None)
    if "items" in out:
        out["items"] = portable(out["items"])
    if "properties" in out:
        out["properties"] = {k: portable(v) for k, v in out["properties"].items()}
    return out


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec("check_availability", CheckAvailabilityArgs, SchedulingTools.check_availability),
        ToolSpec(
            "book_appointment",
            BookAppointmentArgs,
            SchedulingTools.book_appointment,
            keyed=True,
        ),
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


def calendar_unavailable(error: CalendarError) -> ToolResult:
    """The external calendar could not be read: say so plainly, book nothing."""
    return ToolResult(ok=False, message=str(error), data={"error": "calendar_unavailable"})


def run_tool(
    tools: SchedulingTools,
    name: str,
    raw_args: str | Mapping[str, Any] | None,
    request_key: str | None = None,
) -> ToolResult:
    """Run one tool. `request_key` is the server's id of this request (VAPI's
    toolCallId): the same key from the same caller books once."""
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
        if spec.keyed:
            return spec.run(tools, args, request_key)
        return spec.run(tools, args)
    except CalendarError as exc:
        return calendar_unavailable(exc)


# The check_availability arguments the offline engine builds.
_OWN_AVAILABILITY_KEYS = frozenset({"date", "appointment_type", "part_of_day", "after", "limit"})


def check_availability_in_process(
    tools: SchedulingTools, arguments: Mapping[str, Any]
) -> ToolResult | FreeTimes:
    """check_availability for arguments the offline engine built itself, validated by
    `CheckAvailabilityArgs` as any call's are, answered with the times themselves (in the
    agent's zone) instead of a result whose ISO strings the engine would parse back.
    Anything else, or arguments validation refuses, take `run_tool`'s whole path (its
    error message). Arguments from a model or VAPI always go through `run_tool`."""
    if not _OWN_AVAILABILITY_KEYS.issuperset(arguments):
        return run_tool(tools, "check_availability", arguments)
    try:
        args = CheckAvailabilityArgs.model_validate(arguments)
    except ValidationError:
        return run_tool(tools, "check_availability", arguments)
    try:
        return tools.free_times(
            args.appointment_type, args.date, args.part_of_day, args.after, args.limit
        )
    except CalendarError as exc:
        return calendar_unavailable(exc)


# list_appointments' arguments as the offline engine sends them (none): the defaults,
# validated once. Read only (the tool reads `include_past`).
_NO_ARGUMENTS = ListAppointmentsArgs()


def list_appointments_in_process(tools: SchedulingTools) -> ToolResult:
    """`run_tool(tools, "list_appointments", {})`, the engine's own call at every booking
    attempt, without parsing and validating the same empty arguments each time."""
    try:
        return tools.list_appointments(_NO_ARGUMENTS)
    except CalendarError as exc:
        return calendar_unavailable(exc)


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
