"""One audit entry per refused webhook, the same for Twilio and VAPI.

The entry names the provider, the path, the reason and the client address, never the
presented credential or body.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.security import audit
from app.services import services_of


async def audit_rejection(request: Request, provider: str, reason: str) -> None:
    """Record that `provider`'s webhook at this path was refused, and why."""
    await run_in_threadpool(_record, request, provider, reason)


def _record(request: Request, provider: str, reason: str) -> None:
    with services_of(request).session_factory() as session:
        audit.record(
            session,
            "webhook.rejected",
            actor=provider,
            subject=request.url.path,
            details={"reason": reason, "client": client_address(request)},
        )
        session.commit()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
