"""Request and response bodies of the admin API. Input is validated here, once:
IANA time zones, weekly hours, appointment types, E.164 numbers (app.phone)."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from itertools import pairwise
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic.config import JsonDict

from app.models import AppointmentStatus, SyncStatus
from app.phone import InvalidPhoneNumber, mask, to_e164
from app.security.audit import scrub

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROLES = Literal["admin", "operator", "readonly"]
CALLER_ID_POLICIES = Literal["strict", "open"]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class FromRow(BaseModel):
    """A response body read off an ORM row: `UserOut.model_validate(row)`. Renamed and
    derived fields say where they come from (`validation_alias`) and how (a validator),
    so masking happens here, whatever the endpoint asks for."""

    model_config = ConfigDict(from_attributes=True)


def masked(number: str | None) -> str | None:
    return mask(number) if number else None


def _is_set(value: object) -> bool:
    return value is not None


def _or_empty_dict(value: dict[str, Any] | None) -> dict[str, Any]:
    return value or {}


def _or_empty_list(value: list[Any] | None) -> list[Any]:
    return value or []


MaskedNumber = Annotated[str, BeforeValidator(mask)]
MaskedOrNone = Annotated[str | None, BeforeValidator(masked)]
IsSet = Annotated[bool, BeforeValidator(_is_set)]


class Strict(BaseModel):
    """Unknown fields are a mistake worth reporting, not something to drop silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _iana_zone(value: str) -> str:
    if not value or value.startswith(("/", ".")) or ".." in value:
        raise ValueError("not an IANA time zone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def _e164(value: str) -> str:
    try:
        return to_e164(value)
    except InvalidPhoneNumber as exc:
        raise ValueError(str(exc)) from None


TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["America/Los_Angeles"]),
    AfterValidator(_iana_zone),
]
E164 = Annotated[
    str, Field(min_length=3, max_length=32, examples=["+14155550123"]), AfterValidator(_e164)
]


def _weekly_hours(value: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    cleaned: dict[str, list[list[str]]] = {}
    for day, windows in value.items():
        if day not in DAYS:
            raise ValueError(f"unknown day {day!r}; use {', '.join(DAYS)}")
        parsed: list[tuple[time, time]] = []
        for window in windows:
            if len(window) != 2 or not all(_HHMM.match(part) for part in window):
                raise ValueError(f'{day}: each window is ["HH:MM", "HH:MM"]')
            opens, closes = time.fromisoformat(window[0]), time.fromisoformat(window[1])
            if closes <= opens:
                raise ValueError(f"{day}: {window[0]}-{window[1]} closes before it opens")
            parsed.append((opens, closes))
        parsed.sort()
        for (_, end), (start, _) in pairwise(parsed):
            if start < end:
                raise ValueError(f"{day}: windows overlap")
        if parsed:
            cleaned[day] = [[f"{a:%H:%M}", f"{b:%H:%M}"] for a, b in parsed]
    return cleaned


WeeklyHours = Annotated[
    dict[str, list[list[str]]],
    Field(
        examples=[{"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "sat": [["10:00", "14:00"]]}]
    ),
    AfterValidator(_weekly_hours),
]


class AppointmentTypeIn(Strict):
    key: str = Field(..., examples=["consultation"], description="lower-case slug")
    name: str = Field(..., min_length=1, max_length=100, examples=["Consultation"])
    duration_minutes: int = Field(..., ge=5, le=720)
    buffer_before_minutes: int = Field(0, ge=0, le=240)
    buffer_after_minutes: int = Field(0, ge=0, le=240)

    @field_validator("key")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _KEY.match(value):
            raise ValueError("key: lower-case letters, digits, - and _ (max 64)")
        return value


def _unique_types(value: list[AppointmentTypeIn]) -> list[AppointmentTypeIn]:
    keys = [t.key for t in value]
    if len(set(keys)) != len(keys):
        raise ValueError("appointment type keys must be unique")
    return value


AppointmentTypes = Annotated[
    list[AppointmentTypeIn], Field(max_length=50), AfterValidator(_unique_types)
]
Pin = Annotated[str, Field(pattern=r"^\d{4,8}$", description="4-8 digits; stored hashed")]


# --- users -----------------------------------------------------------------------------


class UserCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"name": "Sam Rivera", "email": "sam@example.com"}]},
    )
    name: str = Field(..., min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserOut(FromRow):
    id: str
    name: str
    email: str | None
    created_at: datetime


# --- phone numbers -----------------------------------------------------------------------


class PhoneNumberCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"number": "+14155550123", "purpose": "caller"}]},
    )
    number: E164
    purpose: Literal["caller", "agent_line"] = Field(
        "caller",
        description="caller: the user's own phone (verified by SMS); agent_line: a number "
        "of ours dedicated to one agent (admin only, needs agent_id)",
    )
    agent_id: str | None = Field(None, max_length=32)


class VerifyCode(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"code": "123456"}]},
    )
    code: str = Field(..., pattern=r"^\d{6}$")


class PhoneNumberOut(FromRow):
    id: str
    number: MaskedNumber = Field(
        ..., validation_alias="e164", description="masked; the full number is never returned"
    )
    purpose: str
    user_id: str
    agent_id: str | None
    verified: IsSet = Field(..., validation_alias=AliasChoices("verified_at"))
    verified_at: datetime | None
    created_at: datetime
    pending_verification: bool = False


class VerificationOut(BaseModel):
    phone_number: PhoneNumberOut
    status: Literal["code_sent", "verified", "wrong_code", "expired", "locked", "no_pending"]
    expires_at: datetime | None = None
    attempts_left: int | None = None


# --- agents ---------------------------------------------------------------------------------

AGENT_EXAMPLE: JsonDict = {
    "user_id": "usr_0123456789abcdef",
    "name": "Sam's scheduling line",
    "timezone": "America/Los_Angeles",
    "weekly_hours": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]},
    "appointment_types": [
        {
            "key": "consultation",
            "name": "Consultation",
            "duration_minutes": 30,
            "buffer_after_minutes": 10,
        }
    ],
    "greeting": "Hi, this is Sam's scheduling line.",
    "pin": "4321",
}


class FaqEntry(Strict):
    question: str = Field(..., min_length=1, max_length=500)
    answer: str = Field(..., min_length=1, max_length=2000)


class AgentFields(Strict):
    greeting: str | None = Field(None, max_length=2000)
    instructions: str | None = Field(None, max_length=8000)
    timezone: TimeZoneName | None = None
    weekly_hours: WeeklyHours | None = None
    appointment_types: AppointmentTypes | None = None
    slot_step_minutes: int | None = Field(None, ge=5, le=240)
    min_notice_minutes: int | None = Field(None, ge=0, le=60 * 24 * 30)
    horizon_days: int | None = Field(None, ge=1, le=730)
    daily_cap: int | None = Field(None, ge=1, le=500)
    caller_id_policy: CALLER_ID_POLICIES | None = Field(
        None, description="strict: an unattested caller must give the PIN to manage bookings"
    )
    pin: Pin | None = None
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    voice: str | None = Field(None, max_length=64)
    address: str | None = Field(None, max_length=500)
    services_description: str | None = Field(None, max_length=4000)
    faq: list[FaqEntry] | None = Field(None, max_length=50)
    voice_mode: Literal["gather", "stream"] | None = None
    active: bool | None = None


class AgentCreate(AgentFields):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [AGENT_EXAMPLE]}
    )
    user_id: str = Field(..., max_length=32)
    name: str = Field(..., min_length=1, max_length=200)
    timezone: TimeZoneName = "UTC"


class AgentUpdate(AgentFields):
    name: str | None = Field(None, min_length=1, max_length=200)
    clear_pin: bool = Field(False, description="remove the PIN")
    clear_daily_cap: bool = Field(False, description="remove the daily cap")


class AgentOut(FromRow):
    id: str
    user_id: str
    name: str
    timezone: str
    weekly_hours: Annotated[dict[str, Any], BeforeValidator(_or_empty_dict)]
    appointment_types: Annotated[list[dict[str, Any]], BeforeValidator(_or_empty_list)]
    slot_step_minutes: int
    min_notice_minutes: int
    horizon_days: int
    daily_cap: int | None
    greeting: str
    instructions: str
    caller_id_policy: str
    has_pin: IsSet = Field(..., validation_alias="pin_hash")
    language: str
    voice: str | None
    address: str
    services_description: str
    faq: Annotated[list[dict[str, str]], BeforeValidator(_or_empty_list)]
    voice_mode: str
    calendar_provider: str
    active: bool
    created_at: datetime


# --- appointments ---------------------------------------------------------------------------


class AppointmentOut(FromRow):
    id: str
    agent_id: str
    appointment_type: str
    start_at: datetime
    end_at: datetime
    status: AppointmentStatus
    contact: MaskedOrNone = Field(
        None, validation_alias="contact_e164", description="masked caller number"
    )
    contact_name: str | None
    channel: str
    conversation_id: str | None
    sync_status: SyncStatus
    created_at: datetime
    cancelled_at: datetime | None


class Reschedule(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"new_start": "2026-11-24T15:00:00-08:00"}]},
    )
    new_start: datetime = Field(..., description="ISO 8601; without offset: the agent's zone")


class ToolOutcome(BaseModel):
    ok: bool
    message: str
    appointment: AppointmentOut | None = None


# --- conversations ------------------------------------------------------------------------------


class MessageOut(FromRow):
    id: int
    direction: str
    # What callers typed may hold numbers or a PIN: masked like the audit log.
    body: Annotated[str, BeforeValidator(scrub)]
    tool_calls: Annotated[list[dict[str, Any]] | None, BeforeValidator(scrub)]
    created_at: datetime


class ConversationOut(FromRow):
    id: str
    channel: str
    caller: MaskedOrNone = Field(None, validation_alias="caller_e164", description="masked")
    agent_id: str | None
    status: str
    created_at: datetime
    updated_at: datetime


class ConversationDetail(ConversationOut):
    details: Annotated[dict[str, Any], BeforeValidator(_or_empty_dict), AfterValidator(scrub)]
    messages: list[MessageOut] = Field(default_factory=list)


# --- calendar, opt-outs, audit, keys ------------------------------------------------------------


class CalendarConnectionOut(FromRow):
    id: str
    agent_id: str
    provider: str
    calendar_id: str
    account_email: str | None
    status: str
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class OptOutOut(BaseModel):
    id: str = Field(..., description="opaque id for removal (the number itself is masked)")
    number: str
    opted_out_at: datetime


class AuditEntryOut(FromRow):
    id: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    details: Annotated[dict[str, Any], BeforeValidator(_or_empty_dict)]
    # The chain hash, set once the background seal has chained the entry.
    hash: str | None


class ChainOut(BaseModel):
    ok: bool
    entries: int
    first_bad_id: int | None
    reason: str | None


class ApiKeyCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"name": "ops dashboard", "role": "readonly"}]},
    )
    name: str = Field(..., min_length=1, max_length=200)
    role: ROLES
    user_id: str | None = Field(None, max_length=32, description="scope the key to one user")


class ApiKeyOut(FromRow):
    id: str
    prefix: str
    name: str
    role: str
    user_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(..., description="the full key; shown this once, store it now")


# --- analytics ---------------------------------------------------------------------------


class Bucket(BaseModel):
    bucket: str = Field(..., description="UTC day (YYYY-MM-DD) or hour (YYYY-MM-DDTHH)")
    calls: int
    messages: int


class AgentBookings(BaseModel):
    agent_id: str
    bookings: int
    cancellations: int


class ChannelConversion(BaseModel):
    channel: str
    conversations: int
    with_booking: int
    conversion: float


class Analytics(BaseModel):
    since: date
    until: date
    granularity: Literal["day", "hour"]
    traffic: list[Bucket]
    bookings_per_agent: list[AgentBookings]
    conversion_per_channel: list[ChannelConversion]
