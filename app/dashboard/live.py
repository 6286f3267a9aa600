"""Conversations: the list, one thread with its transcript and report, and new turns
pushed to the open page as server-sent events (no reload, no WebSocket state)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.dashboard import views
from app.dashboard.web import NotFound, ReadSession, SignInRequired, owner_id, render, templates
from app.db import read_only
from app.models import Agent
from app.services import services_of

router = APIRouter(prefix="/dashboard", include_in_schema=False)
POLL_SECONDS = 1.0
# One stream lasts at most this long; EventSource reconnects with Last-Event-ID, so a
# long-open tab costs a reconnect, not a thread held forever.
STREAM_SECONDS = 300


def _agent(session: Session, request: Request, agent_id: str) -> tuple[str, Agent]:
    user_id = owner_id(request, session)
    agent = views.owned_agent(session, user_id, agent_id)
    if agent is None:
        raise NotFound
    return user_id, agent


@router.get("/a/{agent_id}/conversations")
def conversation_list(request: Request, agent_id: str, session: ReadSession) -> HTMLResponse:
    user_id, agent = _agent(session, request, agent_id)
    return render(
        request,
        "conversations.html",
        {
            "agent": agent,
            "agents": views.owned_agents(session, user_id),
            "rows": views.conversations(session, agent),
        },
    )


@router.get("/a/{agent_id}/conversations/{conversation_id}")
def conversation_page(
    request: Request, agent_id: str, conversation_id: str, session: ReadSession
) -> HTMLResponse:
    user_id, agent = _agent(session, request, agent_id)
    row = views.conversation(session, agent, conversation_id)
    if row is None:
        raise NotFound
    turns = views.turns(session, agent, row.id)
    return render(
        request,
        "conversation.html",
        {
            "agent": agent,
            "agents": views.owned_agents(session, user_id),
            "conversation": row,
            "caller": views.mask(row.caller_e164),
            "turns": turns,
            "report": views.report(row),
            "last_id": turns[-1].id if turns else 0,
        },
    )


def _event(turn: views.Turn) -> str:
    html = templates.get_template("_turn.html").render(turn=turn)
    data = "".join(f"data: {line}\n" for line in html.splitlines())
    return f"id: {turn.id}\nevent: turn\n{data}\n"


@router.get("/a/{agent_id}/conversations/{conversation_id}/events")
async def conversation_events(
    request: Request, agent_id: str, conversation_id: str, after: int = 0
) -> StreamingResponse:
    factory = services_of(request).session_factory

    def check() -> Agent:
        with factory() as session, read_only(session):
            _, agent = _agent(session, request, agent_id)
            if views.conversation(session, agent, conversation_id) is None:
                raise NotFound
            session.expunge(agent)
            return agent

    try:
        agent = await run_in_threadpool(check)
    except SignInRequired:
        raise HTTPException(401, "Sign in again") from None
    resume = request.headers.get("last-event-id", "")
    last = int(resume) if resume.isdigit() else max(after, 0)

    def new_turns(since: int) -> list[views.Turn]:
        with factory() as session, read_only(session):
            return views.turns(session, agent, conversation_id, after=since)

    async def stream() -> AsyncIterator[str]:
        nonlocal last
        yield "retry: 2000\n\n"
        for _ in range(int(STREAM_SECONDS / POLL_SECONDS)):
            if await request.is_disconnected():
                return
            for turn in await run_in_threadpool(new_turns, last):
                last = turn.id
                yield _event(turn)
            await asyncio.sleep(POLL_SECONDS)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
