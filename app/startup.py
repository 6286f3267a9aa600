"""Configuration errors as an operator should see them: one line naming the setting and
the fix, exit code 2, and never any part of a secret value, in every command.

`run(cli)` wraps the CLI; `preflight(settings)` runs before `serve`/`up` hand over to
uvicorn, so a wrong TOKEN_ENCRYPTION_KEYS is this one line, not a traceback from inside
the server's start-up.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from pydantic import ValidationError

from app.config import Settings
from app.security.vault import VaultError

EXIT_CONFIG = 2


def describe(exc: ValidationError) -> str:
    """`NAME: reason` for the first invalid setting (pydantic hides the input value:
    Settings sets hide_input_in_errors, and only `msg` is used here anyway)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    name = "_".join(str(part) for part in error.get("loc", ())).upper() or "settings"
    reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{name}: {reason}"


def fail(message: str) -> NoReturn:
    print(f"configuration error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)


def preflight(settings: Settings) -> None:
    """What the server checks at start-up, checked before it starts."""
    from app.calendar.oauth import client_config
    from app.db import make_engine, make_session_factory, read_only
    from app.security.vault import build_vault, check_readable

    vault = build_vault(settings, needed=client_config(settings) is not None)
    engine = make_engine(settings)
    try:
        with make_session_factory(engine)() as session, read_only(session):
            check_readable(session, vault)
    finally:
        engine.dispose()


def run(cli: Callable[[], object]) -> None:
    try:
        cli()
    except ValidationError as exc:
        fail(f"{describe(exc)} (set it in the environment or .env; see .env.example)")
    except VaultError as exc:
        fail(str(exc))
