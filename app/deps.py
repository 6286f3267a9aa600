"""FastAPI dependencies, as Annotated aliases. Everything comes from the app's one typed
`Services` (app/services.py), which create_app() builds, so tests build an app with their
own clock, database or engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from app.config import Settings
from app.services import Services, services_of


# Plain attribute reads are `async def`: FastAPI runs a sync dependency in a worker
# thread, one thread hop per request for nothing (every Twilio webhook asks for settings).
async def get_settings(connection: HTTPConnection) -> Settings:
    return services_of(connection).settings


async def get_services(connection: HTTPConnection) -> Services:
    return services_of(connection)


def get_session(connection: HTTPConnection) -> Iterator[Session]:
    with services_of(connection).session_factory() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
