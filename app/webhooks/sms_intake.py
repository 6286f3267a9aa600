"""An inbound SMS's first round trip: the idempotency claim, the texter's opt-out and
(on PostgreSQL) the routing lookup in one statement.

On PostgreSQL the claim's INSERT is a CTE of a SELECT that also reads the opt-out row and
both numbers' routing rows; on SQLite (no INSERT in a CTE) the opt-out rides on the
INSERT's RETURNING and routing reads its rows later. Reading ahead is harmless: what
decides the answer (retry, opt-out, keywords, the rate limit, routing) is applied in the
same order as before, and a retry (no new row) uses none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, exists, literal, select, true
from sqlalchemy.orm import Session

from app.models import SmsOptOut, utcnow
from app.routing import lookup_joined, numbers_of
from app.security.idempotency import Claim, ClaimRequest


@dataclass(frozen=True)
class Intake:
    claim: Claim
    opted_out: bool
    # The routing lookup's rows when read with the claim (PostgreSQL); None: route() reads.
    looked_up: Sequence[Row[Any]] | None


def take_in(session: Session, message_sid: str, caller: str | None, dialled: str | None) -> Intake:
    """Claim the message and learn what its turn needs first, in one round trip."""
    request = ClaimRequest("twilio", message_sid, "sms", None, utcnow())
    if caller is None:  # answered with silence: nothing more to read
        return Intake(request.result(session, session.scalar(request.insert(session))), False, None)
    opted_out = exists().where(SmsOptOut.e164 == caller).label("opted_out")
    if session.get_bind().dialect.name != "postgresql":
        row = session.execute(request.insert(session).returning(opted_out)).first()
        if row is None:  # a retry: its first answer is all it gets
            return Intake(request.result(session, None), False, None)
        return Intake(request.result(session, row.id), bool(row.opted_out), None)
    claimed = request.insert(session).cte("claimed")
    anchor = select(literal(1).label("one")).subquery()
    statement = lookup_joined(
        select(claimed.c.id.label("claim_id"), opted_out)
        .select_from(anchor)
        .outerjoin(claimed, true())
    )
    rows = session.execute(statement, {"numbers": numbers_of(caller, dialled)}).all()
    return Intake(request.result(session, rows[0].claim_id), bool(rows[0].opted_out), rows)
