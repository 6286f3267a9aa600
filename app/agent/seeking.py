"""Slot seeking: turn what the caller asked for (a day, a time, a part of the day, a
range, a correction) into free times from check_availability, and offer or propose them.
Past days and days beyond the booking horizon are refused by name, never moved."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from app.agent import phrasing as say
from app.agent.dates import PART_RANGES
from app.agent.dialogue import DialogueBase
from app.agent.understanding import Message
from app.calendar.availability import BusyIndex, Unavailable, check_slot

OFFER_COUNT = 3
OFFER_GAP = timedelta(minutes=60)
# Made once: a timedelta or time built from keywords at each search costs more than
# the arithmetic it is for.
MIDNIGHT = time(0)
ONE_DAY = timedelta(days=1)
TWO_WEEKS_LESS_A_DAY = timedelta(days=13)
NEAR_EXACT = timedelta(hours=3)  # how far before a time asked for its neighbours start
SHIFT_STEP = timedelta(minutes=1)
SHIFT_GAP = timedelta(minutes=30)


def _part_bounds(part: str) -> tuple[time, time]:
    low, high = PART_RANGES[part]
    return time(low), time(23, 59) if high == 24 else time(high)


class SlotSeeking(DialogueBase):
    def seek(self) -> str:
        """Find times for the request in state and offer or propose them."""
        key = self.type_key()
        if key is None and not self.types:
            self.clear_flow()
            return self.t("no_types")
        day = date.fromisoformat(self.state["day"]) if self.state.get("day") else None
        # A past or too-distant day is refused first: no question about the kind of
        # appointment before the person learns the day cannot be booked at all.
        refused = self.out_of_range(day)
        if refused is not None:
            return refused
        if key is None:
            self.state["awaiting"] = "type"
            return self.t("is_that_for", types=self.type_names())
        at = time.fromisoformat(self.state["at"]) if self.state.get("at") else None
        part = self.state.get("part")
        if self.state.get("after") or self.state.get("before") or self.state.get("until"):
            return self.seek_range(day, part, key)
        if at is not None:
            if day is None:
                day = self.day_for_time(at)
                self.state["day"] = day.isoformat()
            return self.seek_exact(self.at_local(day, at), key)
        return self.seek_day(day, part, key)

    def out_of_range(self, day: date | None) -> str | None:
        """A past day is refused as past, a day past the horizon as such: never moved."""
        if day is None:
            return None
        today = self.now.date()
        if day < today:
            self.state.pop("day", None)
            self.state["awaiting"] = "when"
            return self.t("passed", day=self.day_text(day))
        last = (self.now + self.schedule.horizon).date()
        if day > last:
            self.state.pop("day", None)
            self.state["awaiting"] = "when"
            return self.t(
                "beyond_horizon",
                day=self.day_text(day),
                days=self.schedule.horizon.days,
                last=self.day_text(last),
            )
        return None

    def seek_range(self, day: date | None, part: str | None, key: str) -> str:
        """ "after 3 this week", "before noon on Friday": the first days with room."""
        after = time.fromisoformat(self.state["after"]) if self.state.get("after") else None
        before = time.fromisoformat(self.state["before"]) if self.state.get("before") else None
        first = day or self.now.date()
        until = date.fromisoformat(self.state["until"]) if self.state.get("until") else None
        last = until or (first if day is not None else first + TWO_WEEKS_LESS_A_DAY)
        last = min(last, (self.now + self.schedule.horizon).date())
        current = first
        while current <= last:
            found = [
                s
                for s in self.slots(
                    date=current.isoformat(),
                    appointment_type=key,
                    part_of_day=part,
                    after=self.at_local(current, after).isoformat() if after else None,
                    limit=20,
                )
                if (after is None or s.time() >= after) and (before is None or s.time() < before)
            ]
            if found:
                return self.offer(self.spread(found))
            current += ONE_DAY
        bounds = []
        if after is not None:
            bounds.append(self.t("after_time", time=self.clock(self.at_local(first, after))))
        if before is not None:
            bounds.append(self.t("before_time", time=self.clock(self.at_local(first, before))))
        span = self.day_text(first)
        if last != first:
            span = self.t("range_span", first=span, last=self.day_text(last))
        for key_ in ("after", "before", "until"):
            self.state.pop(key_, None)
        joined = self.join(bounds, "and")
        return self.offer([], prefix=self.t("nothing_free_range", bounds=joined, span=span))

    def day_for_time(self, at: time) -> date:
        today = self.now.date()
        if self.at_local(today, at) >= self.now + self.schedule.min_notice:
            return today
        return today + ONE_DAY

    def seek_exact(self, wanted: datetime, key: str) -> str:
        window_start = max(wanted - NEAR_EXACT, self.at_local(wanted.date(), MIDNIGHT))
        free = self.slots(
            date=wanted.date().isoformat(),
            appointment_type=key,
            after=window_start.isoformat(),
            limit=20,
        )
        if wanted in free or self.overlaps_own(wanted, key):
            self.state["offers"] = [wanted.isoformat()]
            self.state["proposal"] = wanted.isoformat()
            return self.ask_confirm(free_now=True)
        reason = self.why_not(wanted, key)
        if len(self.spread(free)) < OFFER_COUNT and window_start.time() != MIDNIGHT:
            # Late in the day (or after closing): look at the whole day for neighbours.
            earlier = self.slots(date=wanted.date().isoformat(), appointment_type=key, limit=20)
            free = sorted(set(free) | set(earlier))
        nearby = self.spread(sorted(free, key=lambda s: abs(s - wanted)))
        if not nearby:
            nearby = self.soonest_after(self.at_local(wanted.date() + ONE_DAY, MIDNIGHT), key)
        return self.offer(
            nearby, prefix=self.t("sorry_when_reason", when=self.when_text(wanted), reason=reason)
        )

    def seek_day(self, day: date | None, part: str | None, key: str) -> str:
        if day is None:
            found = self.slots(appointment_type=key, part_of_day=part, limit=20)
            return self.offer(self.spread(found), none_text=self.nothing_soon(part))
        if day < self.now.date():
            return self.t("passed", day=self.day_text(day))
        found = self.slots(date=day.isoformat(), appointment_type=key, part_of_day=part, limit=20)
        if found:
            return self.offer(self.spread(found))
        later = self.soonest_after(self.at_local(day + ONE_DAY, MIDNIGHT), key, part)
        what = self.day_text(day) + (f" {self.part_word(part)}" if part else "")
        if self.closed(day, part):
            return self.offer(later, prefix=self.t("closed_then", what=what))
        return self.offer(later, prefix=self.t("nothing_free_day", what=what))

    def soonest_after(self, moment: datetime, key: str, part: str | None = None) -> list[datetime]:
        found = self.slots(
            appointment_type=key, part_of_day=part, after=moment.isoformat(), limit=20
        )
        return self.spread(found)

    def spread(self, slots: list[datetime], backwards: bool = False) -> list[datetime]:
        """Up to three times an hour or more apart: 9, 10 and 11, not 9, 9:15 and 9:30."""
        ordered = list(reversed(slots)) if backwards else list(slots)  # nearest first
        picked: list[datetime] = []
        for slot in ordered:
            if all(abs(slot - p) >= OFFER_GAP for p in picked):
                picked.append(slot)
            if len(picked) == OFFER_COUNT:
                break
        return sorted(picked)

    def offer(self, slots: list[datetime], prefix: str = "", none_text: str | None = None) -> str:
        if not slots:
            self.state.pop("offers", None)
            self.state.pop("proposal", None)
            self.state["awaiting"] = "when"
            text = none_text or self.t("no_time_near")
            return self.t("another_day", prefix=prefix, text=text).strip()
        self.state["offers"] = [s.isoformat() for s in slots]
        self.state.pop("proposal", None)
        if len(slots) == 1:
            self.state["proposal"] = slots[0].isoformat()
            return self.ask_confirm(prefix=prefix, free_now=True)
        self.state["awaiting"] = "choice"
        body = self.t("offers", kind=self.type_name(), slots=self.slot_list(slots))
        return f"{prefix} {body}".strip()

    def offer_list_text(self, offers: list[datetime]) -> str:
        return self.slot_list(offers) + "?"

    def nothing_soon(self, part: str | None) -> str:
        if part:
            return self.t("nothing_soon_part", part=self.part_word(part))
        return self.t("nothing_soon")

    def closed(self, day: date, part: str | None) -> bool:
        """Closed that day (or that part of it) by the opening hours, not merely full."""
        windows = self.schedule.hours.get(day.weekday(), ())
        if part is None or not windows:
            return not windows
        low, high = _part_bounds(part)
        return not any(opens < high and closes > low for opens, closes in windows)

    def why_not(self, wanted: datetime, key: str) -> str:
        kind = self.schedule.type_named(key)
        if kind is None:
            return self.t("not_available")
        reason = check_slot(self.schedule, kind, BusyIndex([]), now=self.turn.now, start=wanted)
        step = self.schedule.step_minutes
        if reason is None and (wanted.hour * 60 + wanted.minute) % step:
            # Free, but not a time slots start at ("10 past 3"): saying "taken" would lie.
            return self.t("off_step", step=step)
        if reason is None:
            return self.t("is_taken")
        if reason is Unavailable.CLOSED:
            return self.t("outside_hours", hours=self.hours_text(wanted.date()))
        if reason is Unavailable.IN_PAST:
            return self.t("already_passed")
        if reason is Unavailable.TOO_SOON:
            return self.t("too_soon")
        if reason is Unavailable.PAST_HORIZON:
            return self.t("too_far")
        return self.t("not_available")

    def hours_text(self, day: date) -> str:
        windows = self.schedule.hours.get(day.weekday(), ())
        weekdays = say.weekdays(day, self.lang)
        if not windows:
            return self.t("closed_on", weekdays=weekdays)
        spans = [
            self.t(
                "span",
                opens=say.clock(self.at_local(day, opens), "voice", self.lang),
                closes=say.clock(self.at_local(day, closes), "voice", self.lang),
            )
            for opens, closes in windows
        ]
        return self.t("open_on", weekdays=weekdays, spans=self.join(spans, "and"))

    def overlaps_own(self, wanted: datetime, key: str) -> bool:
        """Moving an appointment a little: its own current time must not count as busy."""
        target = self.state.get("target")
        kind = self.schedule.type_named(key)
        if self.state.get("intent") != "move" or not target or kind is None:
            return False
        return kind.blocked(wanted).overlaps(kind.blocked(self.local(target["start"])))

    def shift(self, later: bool) -> str:
        key = self.type_key()
        if key is None:
            return self.seek()
        known = [self.local(o) for o in self.state.get("offers") or []]
        if self.state.get("proposal"):
            known.append(self.local(self.state["proposal"]))
        if not known:
            return self.seek()
        part = self.state.get("part")
        if later:
            reference = max(known)
            found = self.slots(
                date=reference.date().isoformat(),
                appointment_type=key,
                after=(reference + SHIFT_STEP).isoformat(),
                limit=20,
            )
            picked = self.spread([s for s in found if s >= reference + SHIFT_GAP])
            if not picked:
                picked = self.soonest_after(
                    self.at_local(reference.date() + ONE_DAY, MIDNIGHT), key, part
                )
            return self.offer(picked, prefix="", none_text=self.t("nothing_later"))
        reference = min(known)
        same_day = self.slots(date=reference.date().isoformat(), appointment_type=key, limit=20)
        picked = self.spread([s for s in same_day if s <= reference - SHIFT_GAP], backwards=True)
        if picked:
            return self.offer(picked)
        soonest = [s for s in self.slots(appointment_type=key, limit=20) if s < reference]
        if soonest:
            return self.offer(self.spread(soonest))
        if self.state.get("proposal"):
            return self.t("nothing_earlier", question=self.confirm_question())
        return self.t("nothing_earlier", question=self.offer_list_text(sorted(known)))

    def decline(self, offers: list[datetime]) -> str:
        proposal = self.state.get("proposal")
        others = [o for o in offers if o.isoformat() != proposal]
        if proposal and others:
            self.state.pop("proposal", None)
            return self.offer(others, prefix=self.t("ok"))
        self.state.pop("proposal", None)
        self.state["awaiting"] = "when"
        return self.t("suit_better", example=self.example())

    def chosen_offer(self, message: Message, offers: list[datetime]) -> datetime | None:
        if not offers:
            return None
        if message.number is not None:
            by_hour = [o for o in offers if o.hour % 12 == message.number % 12 and o.minute == 0]
            if by_hour:
                return by_hour[0]
            if 1 <= message.number <= len(offers):
                return offers[message.number - 1]
        at = message.when.at
        if at is not None and message.when.day in (None, offers[0].date()):
            for offer in offers:
                if offer.time() == at:
                    return offer
            return None
        if message.choice is not None and message.when.day is None:
            if message.choice == -1:
                return offers[-1]
            if message.choice < len(offers):
                return offers[message.choice]
        return None
