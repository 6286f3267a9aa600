"""Each inbound provider event is handled once; a retry gets the stored response."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import ReturningInsert

from app import commit_writes, sql_fast
from app.models import InboundEvent, utcnow


@dataclass(frozen=True)
class Claim:
    # The new event's row id; None when this event was seen before.
    event_id: int | None
    # Set when this event was seen before: what we answered then (None: still running).
    previous_response: str | None = None
    # What `event` is made from, when a caller asks for the entity (most only store the
    # response, by id: `respond`).
    request: ClaimRequest | None = field(default=None, repr=False, compare=False)
    session: Session | None = field(default=None, repr=False, compare=False)

    @property
    def is_new(self) -> bool:
        return self.event_id is not None

    @cached_property
    def event(self) -> InboundEvent | None:
        """The new event as a persistent entity, made when first asked for, without
        reading the row back: setting .response is then an UPDATE at flush, as for any
        loaded object."""
        if self.event_id is None or self.request is None or self.session is None:
            return None
        request = self.request
        event = InboundEvent(
            id=self.event_id,
            provider=request.provider,
            external_id=request.external_id,
            kind=request.kind,
            payload=request.payload,
            response=None,
            created_at=request.created_at,
        )
        make_transient_to_detached(event)
        self.session.add(event)
        return event

    def event_if_made(self) -> InboundEvent | None:
        """`event` if a caller asked for it already (asking makes it)."""
        return cast(InboundEvent | None, self.__dict__.get("event"))


def claim(
    session: Session,
    provider: str,
    external_id: str,
    kind: str,
    payload: dict[str, Any] | None = None,
) -> Claim:
    """Record the event, or report that it was recorded before.

    The row is written inside the caller's transaction, so the event, its effects and its
    stored response commit together: a crash in between leaves no half-handled event, and
    the provider's retry simply runs it again. One statement in the common case: an
    INSERT that does nothing on a duplicate (a concurrent delivery on PostgreSQL waits for
    the first to commit, then finds its row).
    """
    request = ClaimRequest(provider, external_id, kind, payload, utcnow())
    # On the table, not the entity: the ORM's bulk-insert path costs more than the INSERT;
    # and compiled once, sent on the session's cursor (app/sql_fast.py).
    inserted = sql_fast.execute(session, request.insert(session), request.params())
    return request.result(session, inserted.scalar())


_CLAIM_COLUMNS = ("provider", "external_id", "kind", "payload", "created_at")
# The claim's statements, built once per dialect: their parameters change, not their SQL.
_claim_inserts: dict[str, ReturningInsert[int]] = {}
_STORED_RESPONSE = select(InboundEvent.response).where(
    InboundEvent.provider == bindparam("claim_provider"),
    InboundEvent.external_id == bindparam("claim_external_id"),
)


def claim_insert(dialect: str) -> ReturningInsert[int]:
    """The claim's INSERT on `dialect` (parameters: ClaimRequest.params), built once."""
    found = _claim_inserts.get(dialect)
    if found is None:
        table = cast(Table, InboundEvent.__table__)
        found = _claim_inserts[dialect] = (
            _insert_for(dialect)(table)
            .values(
                {
                    name: bindparam(f"claim_{name}", type_=table.c[name].type)
                    for name in _CLAIM_COLUMNS
                }
            )
            .on_conflict_do_nothing(index_elements=["provider", "external_id"])
            .returning(table.c.id)
        )
    return found


@dataclass(frozen=True)
class ClaimRequest:
    """A claim in two halves, so a webhook can learn more in the claim's round trip: its
    INSERT (returning the new row's id, none on a duplicate; parameters from `params`)
    can carry more columns or be a CTE of a larger statement (app/webhooks/sms_intake.py);
    `result` makes the Claim."""

    provider: str
    external_id: str
    kind: str
    payload: dict[str, Any] | None
    created_at: datetime

    def insert(self, session: Session) -> ReturningInsert[int]:
        """The INSERT, the same object for every claim on this dialect."""
        return claim_insert(session.get_bind().dialect.name)

    def params(self) -> dict[str, Any]:
        return {f"claim_{name}": getattr(self, name) for name in _CLAIM_COLUMNS}

    def result(self, session: Session, new_id: int | None) -> Claim:
        """The Claim, given what the INSERT returned."""
        if new_id is None:
            seen = sql_fast.execute(
                session,
                _STORED_RESPONSE,
                {"claim_provider": self.provider, "claim_external_id": self.external_id},
            ).first()
            return Claim(None, seen.response if seen else None)
        return Claim(new_id, request=self, session=session)


def respond(session: Session, claimed: Claim, response: str) -> None:
    """Store the answer a retry of this event gets, with the turn's last writes (one
    round trip at commit: app/commit_writes.py)."""
    if claimed.event_id is None:
        raise ValueError("only a new event's answer is stored")
    made = claimed.event_if_made()
    if made is not None:  # the entity holds the response as written
        set_committed_value(made, "response", response)
    commit_writes.update_row(
        session, InboundEvent.__table__, ("id", claimed.event_id), {"response": response}
    )


def _insert_for(dialect: str) -> Callable[..., Any]:
    if dialect == "postgresql":
        return postgresql.insert
    return sqlite.insert
