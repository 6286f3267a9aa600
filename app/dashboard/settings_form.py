"""The settings forms: HTML fields → the admin API's own schemas (AgentUpdate and
ReminderSettingsIn), so the dashboard and the API accept exactly the same values;
errors come back per field."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from app.admin.notifications import ReminderSettingsIn
from app.admin.schemas import AgentUpdate
from app.models import Agent, ReminderSettings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
LANGUAGE_CHOICES = (("en-US", "English"), ("es-US", "Español"))
MAX_TYPES = 20
MAX_FAQ = 20
_WINDOW = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")
_SLUG = re.compile(r"[^a-z0-9]+")
REMINDER_SWITCHES = (
    "reminders_enabled",
    "confirmations_enabled",
    "owner_notifications",
    "reminder_calls",
)


@dataclass
class SettingsForm:
    """What the page shows: current (or just submitted) values and errors by field name."""

    values: dict[str, str] = field(default_factory=dict)
    types: list[dict[str, str]] = field(default_factory=list)
    faq: list[dict[str, str]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def from_agent(agent: Agent) -> SettingsForm:
    values = {
        f"hours_{day}": ", ".join(f"{a}-{b}" for a, b in agent.weekly_hours.get(day, []))
        for day in DAYS
    }
    values.update(
        min_notice_minutes=str(agent.min_notice_minutes),
        horizon_days=str(agent.horizon_days),
        daily_cap="" if agent.daily_cap is None else str(agent.daily_cap),
        language=agent.language,
        greeting=agent.greeting,
        instructions=agent.instructions,
        address=agent.address,
        services_description=agent.services_description,
        pin="",
    )
    types = [
        {
            "key": t["key"],
            "name": t.get("name", t["key"]),
            "duration": str(t.get("duration_minutes", "")),
            "before": str(t.get("buffer_before_minutes", 0)),
            "after": str(t.get("buffer_after_minutes", 0)),
        }
        for t in agent.appointment_types
    ]
    faq = [{"question": f["question"], "answer": f["answer"]} for f in agent.faq]
    return SettingsForm(values=values, types=types, faq=faq)


def _hours(form: FormData, errors: dict[str, str]) -> dict[str, list[list[str]]]:
    hours: dict[str, list[list[str]]] = {}
    for day in DAYS:
        text = str(form.get(f"hours_{day}", "")).strip()
        if not text:
            continue
        windows = []
        for part in text.split(","):
            match = _WINDOW.match(part)
            if match is None:
                errors[f"hours_{day}"] = f"write times as 09:00-17:00 (could not read {part!r})"
                break
            windows.append([match[1].zfill(5), match[2].zfill(5)])
        hours[day] = windows
    return hours


def _rows(form: FormData, prefix: str, names: tuple[str, ...], limit: int) -> list[dict[str, str]]:
    rows = []
    for i in range(limit):
        row = {n: str(form.get(f"{prefix}_{i}_{n}", "")).strip() for n in names}
        if any(row[n] for n in names if n != "key"):
            rows.append(row)
    return rows


def _int(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _type_payload(row: dict[str, str]) -> dict[str, Any]:
    key = row["key"] or _SLUG.sub("-", row["name"].lower()).strip("-")[:64] or "type"
    return {
        "key": key,
        "name": row["name"],
        "duration_minutes": _int(row["duration"]),
        "buffer_before_minutes": _int(row["before"] or "0"),
        "buffer_after_minutes": _int(row["after"] or "0"),
    }


def parse(form: FormData) -> tuple[AgentUpdate | None, SettingsForm, bool]:
    """The validated update (None when a field is wrong), the form to redisplay, and
    whether the daily cap was emptied (the API's clear_daily_cap)."""
    shown = SettingsForm(values={k: str(v) for k, v in form.items() if isinstance(v, str)})
    shown.types = _rows(form, "type", ("key", "name", "duration", "before", "after"), MAX_TYPES)
    shown.faq = _rows(form, "faq", ("question", "answer"), MAX_FAQ)
    hours = _hours(form, shown.errors)
    cap = shown.values.get("daily_cap", "").strip()
    payload: dict[str, Any] = {
        "weekly_hours": hours,
        "appointment_types": [_type_payload(r) for r in shown.types],
        "faq": shown.faq,
        "min_notice_minutes": _int(shown.values.get("min_notice_minutes", "").strip()),
        "horizon_days": _int(shown.values.get("horizon_days", "").strip()),
        "language": shown.values.get("language", "").strip(),
    }
    for name in ("greeting", "instructions", "address", "services_description"):
        payload[name] = shown.values.get(name, "")
    if cap:
        payload["daily_cap"] = _int(cap)
    pin = shown.values.get("pin", "").strip()
    if pin:
        payload["pin"] = pin
    if shown.errors:
        return None, shown, False
    try:
        update = AgentUpdate.model_validate(payload)
    except ValidationError as exc:
        for error in exc.errors():
            shown.errors.setdefault(_field_of(error["loc"], error["msg"]), _message(error))
        return None, shown, False
    return update, shown, not cap


def from_reminders(row: ReminderSettings) -> SettingsForm:
    values = {name: "on" for name in REMINDER_SWITCHES if getattr(row, name)}
    values.update(
        offsets_minutes=", ".join(str(m) for m in row.offsets_minutes),
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
        daily_agenda_time=row.daily_agenda_time or "",
    )
    return SettingsForm(values=values)


def parse_reminders(form: FormData) -> tuple[ReminderSettingsIn | None, SettingsForm]:
    """The validated reminder settings (None when a field is wrong) and the form to
    redisplay; a checkbox left unticked is absent from the form, so it is off."""
    shown = SettingsForm(values={k: str(v) for k, v in form.items() if isinstance(v, str)})
    offsets = shown.values.get("offsets_minutes", "")
    agenda = shown.values.get("daily_agenda_time", "").strip()
    payload: dict[str, Any] = {name: name in shown.values for name in REMINDER_SWITCHES}
    payload.update(
        offsets_minutes=[_int(part.strip()) for part in offsets.split(",") if part.strip()],
        quiet_start=shown.values.get("quiet_start", "").strip(),
        quiet_end=shown.values.get("quiet_end", "").strip(),
        daily_agenda_time=agenda or None,
    )
    try:
        return ReminderSettingsIn.model_validate(payload), shown
    except ValidationError as exc:
        for error in exc.errors():
            shown.errors.setdefault(_field_of(error["loc"], error["msg"]), _message(error))
        return None, shown


def _field_of(loc: tuple[Any, ...], message: str) -> str:
    head = str(loc[0]) if loc else "form"
    if head == "weekly_hours":
        day = message.split("Value error, ", 1)[-1][:3]
        return f"hours_{day}" if day in DAYS else "hours_mon"
    if head in ("appointment_types", "faq") and len(loc) > 1 and isinstance(loc[1], int):
        return f"{'type' if head == 'appointment_types' else 'faq'}_{loc[1]}"
    if head == "appointment_types":
        return "type_0"
    return head


def _message(error: Any) -> str:
    text = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in ("int_parsing", "int_type"):
        return "enter a whole number"
    return text
