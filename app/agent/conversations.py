"""Conversations: find or open one, run one engine turn, keep the transcript and state.

The dialogue state is saved in the conversation row in the same transaction as the turn,
so a restart between two messages loses nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agent.engine import Channel, Engine, Reply, Turn
from app.agent.turn_log import record_engine_turn
from app.calendar.backend import CalendarFactory
from app.models import Appointment, Conversation, Message, User
from app.routing import Route
from app.tools.service import SchedulingTools, ToolContext


class ConversationService:
    def __init__(
        self,
        session: Session,
        engine: Engine,
        calendar_factory: CalendarFactory,
        now: datetime,
        idle_reset: timedelta | None = None,
    ) -> None:
        self.session = session
        self.engine = engine
        self.calendar_factory = calendar_factory
        self.now = now
        self.idle_reset = idle_reset

    def open(self, channel: str, external_id: str, route: Route) -> Conversation:
        conversation = self.session.scalar(
            select(Conversation).where(
                Conversation.channel == channel, Conversation.external_id == external_id
            )
        )
        if conversation is None:
            conversation = Conversation(
                channel=channel,
                external_id=external_id,
                caller_e164=route.caller,
                agent_id=route.agent.id,
                state={},
            )
            self.session.add(conversation)
            self.session.flush()
        elif self._idle_too_long(conversation):
            # A text days later starts a new request, not the end of an old one.
            conversation.state = {}
            conversation.details = {
                k: v for k, v in (conversation.details or {}).items() if k != "caller_name"
            }
        return conversation

    def _idle_too_long(self, conversation: Conversation) -> bool:
        last = (conversation.details or {}).get("last_turn_at")
        if self.idle_reset is None or last is None:
            return False
        return self.now - datetime.fromisoformat(last) > self.idle_reset

    def tools_for(
        self, conversation: Conversation, route: Route, channel: str, may_manage_existing: bool
    ) -> SchedulingTools:
        return SchedulingTools(
            ToolContext(
                session=self.session,
                agent=route.agent,
                calendar=self.calendar_factory(self.session, route.agent),
                now=self.now,
                caller=route.caller,
                channel=channel,
                conversation_id=conversation.id,
                may_manage_existing=may_manage_existing,
            )
        )

    def take_turn(
        self,
        conversation: Conversation,
        route: Route,
        text: str,
        *,
        channel: Channel,
        may_manage_existing: bool = True,
        inbound_external_id: str | None = None,
    ) -> Reply:
        tools = self.tools_for(conversation, route, channel, may_manage_existing)
        reply = self.engine.respond(
            Turn(
                text=text,
                channel=channel,
                now=self.now,
                agent=route.agent,
                tools=tools,
                state=dict(conversation.state or {}),
                caller_name=self.caller_name(conversation, route),
                history=self.history(conversation),
            )
        )
        # Both sides of the turn together: one flush writes them in a single INSERT.
        self.record(conversation, "in", text, external_id=inbound_external_id)
        self.record(conversation, "out", reply.text, tool_calls=reply.tool_calls or None)
        # A new dict, so the JSON column is seen as changed.
        conversation.state = dict(reply.state)
        # The injected clock, not the row's onupdate (wall time), decides idleness.
        conversation.details = {
            **(conversation.details or {}),
            "last_turn_at": self.now.isoformat(),
        }
        if reply.end_conversation:
            conversation.status = "ended"
        if reply.meta:
            record_engine_turn(self.session, conversation, reply.meta, self.now)
        return reply

    def history(self, conversation: Conversation) -> list[tuple[str, str]]:
        """The recent transcript, for engines that ask for it (one indexed query)."""
        limit = getattr(self.engine, "history_messages", 0)
        if not limit:
            return []
        rows = self.session.execute(
            select(Message.direction, Message.body)
            .where(Message.conversation_id == conversation.id)
            .order_by(Message.id.desc())
            .limit(limit)
        ).all()
        return [(row.direction, row.body) for row in reversed(rows)]

    def record(
        self,
        conversation: Conversation,
        direction: str,
        body: str,
        *,
        tool_calls: list[dict[str, object]] | None = None,
        external_id: str | None = None,
    ) -> None:
        self.session.add(
            Message(
                conversation_id=conversation.id,
                direction=direction,
                body=body,
                tool_calls=tool_calls,
                external_id=external_id,
            )
        )

    def caller_name(self, conversation: Conversation, route: Route) -> str | None:
        """Looked up once per conversation; the engine keeps names it learns in its state."""
        details = conversation.details or {}
        if "caller_name" not in details:
            details = {**details, "caller_name": self.known_name(route)}
            conversation.details = details
        return details["caller_name"]

    def known_name(self, route: Route) -> str | None:
        if route.caller_is_owner:
            owner = self.session.get(User, route.agent.user_id)
            return owner.name if owner else None
        return self.session.scalar(
            select(Appointment.contact_name)
            .where(
                Appointment.agent_id == route.agent.id,
                Appointment.contact_e164 == route.caller,
                Appointment.contact_name.is_not(None),
            )
            .order_by(Appointment.created_at.desc())
            .limit(1)
        )
