"""The system prompt, built from the agent's profile: one builder for every model that
speaks for an agent (the LLM engine on SMS and Twilio voice, VAPI's assistant).

Only the owner's configuration goes in here; what a caller says never does (it travels
as a user message), so a caller cannot rewrite the rules the model is given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from app.security.caller_id import STRICT
from app.turn_rows import AgentLike

PromptChannel = Literal["sms", "voice", "vapi"]
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LANGUAGES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "pt": "Portuguese"}
SMS_LIMIT = 320
MAX_FAQ = 20


def language_name(agent: AgentLike) -> str:
    code = (agent.language or "en-US").split("-")[0].lower()
    return LANGUAGES.get(code, code)


def system_prompt(agent: AgentLike, now: datetime, channel: PromptChannel) -> str:
    sections = [
        _persona(agent, channel),
        _clock(agent, now),
        _offer(agent),
        _tools(channel),
        _security(agent, channel),
        _knowledge(agent),
    ]
    if agent.instructions.strip():
        sections.append(f"Owner's instructions: {agent.instructions.strip()}")
    sections.append("When the person is done, say goodbye.")
    return "\n".join(s for s in sections if s)


def _persona(agent: AgentLike, channel: PromptChannel) -> str:
    language = language_name(agent)
    if channel == "sms":
        style = (
            f"You answer text messages. Every reply is plain text of at most {SMS_LIMIT} "
            "characters: no markdown, no lists with bullets, no links unless the owner gave one."
        )
    else:
        style = (
            "You speak with callers on the phone: short natural sentences for the ear, one "
            "question at a time, no lists, no markdown, never read ids, codes or web addresses "
            "aloud, say times like 'three thirty PM'."
        )
    greeting = agent.greeting.strip()
    lines = [
        f"You are {agent.name}, the scheduling assistant of this business. {style}",
        f"Speak {language}, unless the person writes in another language: then answer in theirs.",
    ]
    if greeting:
        lines.append(f"The owner's greeting, for tone: {greeting}")
    return "\n".join(lines)


def _clock(agent: AgentLike, now: datetime) -> str:
    today = now.astimezone(ZoneInfo(agent.timezone))
    return (
        f"Time zone: {agent.timezone}. Today is {today:%A, %B} {today.day}, {today:%Y} "
        f"(local time {today:%H:%M}). Read and give every time in this zone."
    )


def _offer(agent: AgentLike) -> str:
    types = "; ".join(
        f"{t.get('name') or t.get('key')} ({t.get('duration_minutes', '?')} minutes)"
        for t in agent.appointment_types or []
    )
    hours = "; ".join(
        f"{day.title()} " + ", ".join(f"{a}-{b}" for a, b in agent.weekly_hours[day])
        for day in DAY_NAMES
        if (agent.weekly_hours or {}).get(day)
    )
    policy = (
        f"Bookings need at least {agent.min_notice_minutes} minutes' notice and can be made "
        f"up to {agent.horizon_days} days ahead."
    )
    if agent.daily_cap:
        policy += f" At most {agent.daily_cap} appointments a day."
    return "\n".join(
        [
            f"Appointment types: {types or 'ask what they need'}.",
            f"Opening hours: {hours or 'as the tools report'}.",
            policy,
        ]
    )


def _tools(channel: PromptChannel) -> str:
    common = (
        "Always use the tools: check_availability before offering times, list_appointments "
        "for the person's existing ones. Never invent times, and never say something is "
        "booked, moved or cancelled unless a tool said it was done."
    )
    if channel == "vapi":
        return (
            f"{common} Confirm the day, time and type with the caller before book_appointment, "
            "reschedule_appointment or cancel_appointment. Pass times as ISO 8601 in the "
            "agent's zone."
        )
    return (
        f"{common} Book or move only to a slot_id that check_availability returned. "
        "book_appointment, reschedule_appointment and cancel_appointment only prepare the "
        "change: the system then needs the person's own yes in their next message, so ask "
        "them to confirm and wait."
    )


def _security(agent: AgentLike, channel: PromptChannel) -> str:
    if agent.caller_id_policy != STRICT:
        return ""
    if channel == "vapi" and agent.pin_hash:
        return (
            "Security: before listing, moving or cancelling existing appointments, ask the "
            "caller for their PIN and call verify_pin. Booking a new appointment needs no PIN."
        )
    if channel == "vapi":
        return (
            "Security: existing appointments cannot be listed, moved or cancelled on this "
            "line (no PIN is set up); new bookings are fine."
        )
    return (
        "Security: if a tool says identity verification is needed, the system asks for the "
        "PIN itself; never ask for or repeat a PIN."
    )


def _knowledge(agent: AgentLike) -> str:
    lines = []
    if agent.address.strip():
        lines.append(f"Address: {agent.address.strip()}")
    if agent.services_description.strip():
        lines.append(f"Services: {agent.services_description.strip()}")
    faq = [
        f"Q: {item.get('question', '').strip()} A: {item.get('answer', '').strip()}"
        for item in (agent.faq or [])[:MAX_FAQ]
        if item.get("question") and item.get("answer")
    ]
    if faq:
        lines.append("Questions the owner answered (answer only from these):\n" + "\n".join(faq))
    return "\n".join(lines)
