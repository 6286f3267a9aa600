"""Owner dashboard: server-rendered pages for the people whose agents these are."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from app.dashboard import live, routes
from app.dashboard.web import HERE, NotFound, SignInRequired, redirect, render


async def _sign_in_first(request: Request, _exc: Exception) -> Response:
    return redirect(request, "/dashboard/sign-in")


async def _not_found(request: Request, _exc: Exception) -> Response:
    return render(request, "not_found.html", {"agent": None, "agents": []}, status_code=404)


def install(app: FastAPI) -> None:
    app.include_router(routes.router)
    app.include_router(live.router)
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(NotFound, _not_found)
