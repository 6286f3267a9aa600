"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.db import read_only
from app.deps import ServicesDep

PATHS = ("/healthz", "/readyz")
router = APIRouter(tags=["health"])


def _redis_check(url: str) -> str:
    """Shared rate limits live there: without Redis this instance cannot enforce them."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # the probe reports, it does not crash
        return f"unavailable: {type(exc).__name__}"
    return "ok"


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with services.session_factory() as session, read_only(session):
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # the probe reports, it does not crash
        checks["database"] = f"unavailable: {type(exc).__name__}"
    redis_url = services.settings.redis_url
    if redis_url:
        checks["redis"] = _redis_check(redis_url)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
