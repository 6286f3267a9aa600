"""Hypothesis strategies schemathesis does not reach: extreme dates, offsets at the year
bounds and hostile cursors on every list (item 6). Never a 5xx; refusals carry the
error envelope."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import hypothesis
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from app.demo import DemoData
from app.security.api_keys import Role
from tests.admin.conftest import Api, create_user, make_key

SETTINGS = hypothesis.settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
DAY_PARAMS = [
    ("/appointments", "date_from"),
    ("/appointments", "date_to"),
    ("/analytics", "since"),
    ("/analytics", "until"),
]
MOMENT_PARAMS = [
    ("/conversations", "since"),
    ("/conversations", "until"),
    ("/audit", "since"),
    ("/audit", "until"),
]
LISTS = [
    "/users",
    "/phone-numbers",
    "/agents",
    "/appointments",
    "/conversations",
    "/audit",
    "/opt-outs",
]

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.one_of(
    st.datetimes().map(datetime.isoformat),
    st.builds(lambda at, tz: at.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets),
)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False),
        st.text(max_size=40),
        st.sampled_from(["2026-11-23T08:00:00+00:00", "0001-01-01T00:00:00+05:00", "1"]),
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=6,
)


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


cursors = st.one_of(
    json_values.map(cursor_of),
    st.lists(json_values, min_size=2, max_size=2).map(cursor_of),
    st.text(max_size=60),
)


def admin(api: Api, session_factory: sessionmaker[Session]) -> Api:
    return api.as_key(make_key(session_factory, Role.ADMIN))


def assert_refused_cleanly(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["error"] and body["detail"]


def test_extreme_days_never_5xx(api: Api, demo: DemoData, session_factory: sessionmaker[Session]):
    client = admin(api, session_factory)

    @SETTINGS
    @given(day=st.dates(), which=st.sampled_from(DAY_PARAMS))
    @example(day=date(9999, 12, 31), which=("/appointments", "date_to"))
    @example(day=date(1, 1, 1), which=("/analytics", "until"))
    @example(day=date(9999, 12, 31), which=("/analytics", "until"))
    def run(day: date, which: tuple[str, str]) -> None:
        path, name = which
        assert_refused_cleanly(client.get(path, params={name: day.isoformat()}))

    run()


def test_moments_at_the_year_bounds_never_5xx(
    api: Api, demo: DemoData, session_factory: sessionmaker[Session]
):
    client = admin(api, session_factory)

    @SETTINGS
    @given(moment=moments, which=st.sampled_from(MOMENT_PARAMS))
    @example(moment="0001-01-01T00:00:00+05:00", which=("/audit", "since"))
    @example(moment="9999-12-31T23:59:59-05:00", which=("/conversations", "until"))
    def run(moment: str, which: tuple[str, str]) -> None:
        path, name = which
        assert_refused_cleanly(client.get(path, params={name: moment}))

    run()


def test_hostile_cursors_never_5xx(
    api: Api, demo: DemoData, session_factory: sessionmaker[Session]
):
    client = admin(api, session_factory)

    @SETTINGS
    @given(cursor=cursors, path=st.sampled_from(LISTS))
    @example(cursor=cursor_of(["2026-11-23T08:00:00+00:00", 10**30]), path="/users")
    @example(cursor=cursor_of(["a", "b"]), path="/audit")  # text against integer ids
    @example(cursor=cursor_of([[1], {"a": 1}]), path="/appointments")
    @example(cursor=cursor_of(["0001-01-01T00:00:00+05:00", "x"]), path="/conversations")
    @example(cursor=base64.urlsafe_b64encode(str(10**30).encode()).decode(), path="/opt-outs")
    def run(cursor: str, path: str) -> None:
        response = client.get(path, params={"cursor": cursor})
        assert_refused_cleanly(response)

    run()


def test_a_real_cursor_still_pages(
    api: Api, demo: DemoData, session_factory: sessionmaker[Session]
):
    client = admin(api, session_factory)
    create_user(client, "Second")  # the demo user and this one
    for path in ("/users",):
        first = client.get(path, params={"limit": 1}).json()
        assert first["next_cursor"], path
        second = client.get(path, params={"limit": 1, "cursor": first["next_cursor"]})
        assert second.status_code == 200
        assert second.json()["items"][0]["id"] != first["items"][0]["id"]
