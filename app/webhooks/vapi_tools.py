"""POST /tools/{name}: the scheduling tools over REST, one URL per tool, for VAPI tools
configured that way (and for anything else that speaks VAPI's credential).

The body is either VAPI's tool-calls message (answered as VAPI expects, one result per
call) or plain JSON: the tool's arguments with the caller's number, e.g.
`{"caller": "+14155550123", "start": "2026-12-01T15:00:00-08:00"}` (or with the arguments
under "arguments"; "to" names the dialled number for dedicated lines). Plain calls are
answered `{"name", "result"}` or `{"name", "error"}`; an Idempotency-Key header makes a
repeated plain call answer as the first time.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.security.vapi_auth import VapiBody
from app.tools.registry import TOOLS
from app.webhooks.vapi import failed_results, run_budgeted, tool_calls
from app.webhooks.vapi_assistant import VERIFY_PIN
from app.webhooks.vapi_payload import tool_calls_of

router = APIRouter(prefix="/tools", tags=["tools"])
CALLER_KEYS = ("caller", "caller_number", "customer_number")


@router.post("/{name}", summary="Run one scheduling tool (VAPI tool-calls body or plain JSON)")
async def call_tool(name: str, request: Request, body: VapiBody) -> JSONResponse:
    if name not in TOOLS and name != VERIFY_PIN:
        known = ", ".join([*TOOLS, VERIFY_PIN])
        return JSONResponse({"error": f"unknown tool {name!r}; known: {known}"}, status_code=404)
    if body.problem is not None:
        return JSONResponse({"error": body.problem}, status_code=400)
    payload = body.payload
    if not isinstance(payload, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
    message = payload.get("message")
    if isinstance(message, dict) and tool_calls_of(message):
        answer = await run_budgeted(request, message, tool_calls, failed_results, "tool-calls")
        return JSONResponse(answer)
    return JSONResponse(await _plain(request, name, payload))


async def _plain(request: Request, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    caller = next((str(payload[k]) for k in CALLER_KEYS if payload.get(k)), "")
    arguments = payload.get("arguments")
    if not isinstance(arguments, dict):
        skip = {*CALLER_KEYS, "to", "call_id"}
        arguments = {k: v for k, v in payload.items() if k not in skip}
    key = request.headers.get("idempotency-key") or f"rest_{secrets.token_hex(8)}"
    message = {
        "type": "tool-calls",
        "customer": {"number": caller},
        "phoneNumber": {"number": str(payload.get("to") or "")},
        "call": {"id": str(payload.get("call_id") or "")},
        "toolCallList": [{"id": key, "name": name, "arguments": arguments}],
    }
    answer = await run_budgeted(request, message, tool_calls, failed_results, "tool")
    entry = dict(answer["results"][0])
    entry.pop("toolCallId", None)
    return entry
