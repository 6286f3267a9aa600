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

from sqlalchemy import bindparam, exists, literal, select, true
from sqlalchemy.orm import Session

from app import sql_fast
from app.models import SmsOptOut, utcnow
from app.routing import LookedUp, looked_up_at, lookup_joined_columns, numbers_of
from app.security.idempotency import Claim, ClaimRequest


@dataclass(frozen=True)
class Intake:
    claim: Claim
    opted_out: bool
    # The routing lookup's rows when read with the claim (PostgreSQL); None: route() reads.
    looked_up: Sequence[LookedUp] | None


def take_in(session: Session, message_sid: str, caller: str | None, dialled: str | None) -> Intake:
    """Claim the message and learn what its turn needs first, in one round trip."""
    request = ClaimRequest("twilio", message_sid, "sms", None, utcnow())
    connection = session.connection()
    params = request.params()
    if caller is None:  # answered with silence: nothing more to read
        new_id = sql_fast.execute(connection, request.insert(session), params).scalar()
        return Intake(request.result(session, new_id), False, None)
    params["caller"] = caller
    if connection.dialect.name != "postgresql":
        row = sql_fast.execute(connection, _claim_with_opt_out(session, request), params).first()
        if row is None:  # a retry: its first answer is all it gets
            return Intake(request.result(session, None), False, None)
        return Intake(request.result(session, row.id), bool(row.opted_out), None)
    params.update(numbers_of(caller, dialled))
    # The claim, the opt-out, then the lookup's columns (routing's rows, by position);
    # on the connection taken above, which is the session's (no second look-up).
    statement = _claim_with_everything(session, request)
    rows = sql_fast.read(session, statement, params, connection=connection).rows
    first = rows[0]
    looked_up = [looked_up_at(row, 2) for row in rows]
    return Intake(request.result(session, first[0]), bool(first[1]), looked_up)


# Built once per dialect (the claim's INSERT differs): only the parameters change.
_OPTED_OUT = exists().where(SmsOptOut.e164 == bindparam("caller")).label("opted_out")
_with_opt_out: dict[str, Any] = {}
_with_everything: dict[str, Any] = {}


def _claim_with_opt_out(session: Session, request: ClaimRequest) -> Any:
    """SQLite: the claim's INSERT, returning whether the texter opted out."""
    dialect = session.get_bind().dialect.name
    found = _with_opt_out.get(dialect)
    if found is None:
        found = _with_opt_out[dialect] = request.insert(session).returning(_OPTED_OUT)
    return found


def _claim_with_everything(session: Session, request: ClaimRequest) -> Any:
    """PostgreSQL: the claim's INSERT as a CTE of a one-row SELECT of the opt-out, with
    the routing lookup's rows joined on (`numbers_of`)."""
    dialect = session.get_bind().dialect.name
    found = _with_everything.get(dialect)
    if found is None:
        claimed = request.insert(session).cte("claimed")
        anchor = select(literal(1).label("one")).subquery()
        found = _with_everything[dialect] = lookup_joined_columns(
            select(claimed.c.id.label("claim_id"), _OPTED_OUT)
            .select_from(anchor)
            .outerjoin(claimed, true())
        )
    return found
