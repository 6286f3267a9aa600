from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.demo import DemoData
from app.models import Agent, PhoneNumber, User
from app.routing import Route, RouteFailure, Unrouted, route

SHARED = "+15005550006"


def test_verified_owner_on_shared_number_reaches_own_agent(session: Session, demo: DemoData):
    result = route(session, "(415) 555-0123", SHARED)
    assert isinstance(result, Route)
    assert result.agent.id == demo.agent_id
    assert result.caller == "+14155550123"  # normalised to E.164
    assert result.caller_is_owner and result.via == "caller_id"


def test_unknown_caller_on_shared_number(session: Session, demo: DemoData):
    result = route(session, "+14155550999", SHARED)
    assert result == Unrouted(RouteFailure.UNKNOWN_CALLER, "+14155550999")


def test_unverified_number_does_not_route(session: Session, demo: DemoData):
    session.add(PhoneNumber(e164="+14155550777", purpose="caller", user_id=demo.user_id))
    session.flush()
    assert route(session, "+14155550777", SHARED).reason is RouteFailure.UNVERIFIED_CALLER


def test_dedicated_line_routes_every_caller(session: Session, demo: DemoData):
    stranger = route(session, "+447700900123", demo.dedicated_line)
    assert isinstance(stranger, Route)
    assert stranger.agent.id == demo.agent_id
    assert stranger.caller == "+447700900123"
    assert not stranger.caller_is_owner and stranger.via == "dedicated_line"
    owner = route(session, "+14155550123", demo.dedicated_line)
    assert isinstance(owner, Route) and owner.caller_is_owner


def test_caller_number_pinned_to_a_second_agent(session: Session, demo: DemoData):
    second = Agent(user_id=demo.user_id, name="Evening line", timezone="UTC")
    session.add(second)
    session.flush()
    session.add(
        PhoneNumber(
            e164="+14155550456",
            purpose="caller",
            user_id=demo.user_id,
            agent_id=second.id,
            verified_at=second.created_at,
        )
    )
    session.flush()
    result = route(session, "+14155550456", SHARED)
    assert isinstance(result, Route) and result.agent.id == second.id


def test_user_without_agent(session: Session):
    user = User(name="No agent")
    session.add(user)
    session.flush()
    from app.models import utcnow

    session.add(
        PhoneNumber(e164="+14155550888", purpose="caller", user_id=user.id, verified_at=utcnow())
    )
    session.flush()
    assert route(session, "+14155550888", SHARED).reason is RouteFailure.NO_AGENT


def test_garbage_caller_id(session: Session, demo: DemoData):
    for raw in ("", "anonymous", "+1", None):
        assert route(session, raw, SHARED).reason is RouteFailure.INVALID_CALLER


def test_unrouted_callers_are_told_what_to_do():
    from app.routing import explain

    steps = "Ask the operator."
    unknown = explain(Unrouted(RouteFailure.UNKNOWN_CALLER, "+14155550999"), steps)
    assert unknown == "This number isn't registered with a scheduling agent. Ask the operator."
    unverified = Unrouted(RouteFailure.UNVERIFIED_CALLER, "+14155550999")
    assert explain(unverified, steps, again="call").endswith("Verify it, then call again.")
    assert "no scheduling agent" in explain(Unrouted(RouteFailure.NO_AGENT, None), steps)


def test_a_number_added_in_the_session_is_routed_as_the_orm_query_saw_it(
    session: Session, demo: DemoData
):
    """The lookup runs on the session's cursor, after the flush an ORM query would do
    (autoflush): a pending number is seen; without autoflush it is not."""
    session.add(
        PhoneNumber(
            e164="+14155550321",
            purpose="caller",
            user_id=demo.user_id,
            verified_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    with session.no_autoflush:
        assert route(session, "+14155550321", SHARED) == Unrouted(
            RouteFailure.UNKNOWN_CALLER, "+14155550321"
        )
    result = route(session, "+14155550321", SHARED)
    assert isinstance(result, Route) and result.agent.id == demo.agent_id
