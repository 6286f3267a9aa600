"""`python -m app apikeys ...`: create, list and revoke admin API keys.

The first key of a new installation has to come from here (the API needs a key to make
keys). The full key is printed once; only its hash is stored.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.orm import Session

from app.admin import operation_service
from app.clock import system_clock
from app.config import get_settings
from app.security import api_keys
from app.security.api_keys import Role

apikeys_cli = typer.Typer(no_args_is_help=True, help="Admin API keys")
ACTOR = "cli"


def _session() -> Session:
    from app.db import make_engine, make_session_factory

    return make_session_factory(make_engine(get_settings()))()


@apikeys_cli.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the key is for")],
    role: Annotated[Role, typer.Option(help="admin, operator or readonly")] = Role.ADMIN,
    user: Annotated[str | None, typer.Option(help="Scope the key to this user id")] = None,
) -> None:
    """Create a key and print it (shown this once)."""
    with _session() as session:
        new = operation_service.create_api_key(session, ACTOR, name, role, user)
        typer.echo(f"id:     {new.key.id}")
        typer.echo(f"prefix: {new.key.prefix}  role: {role.value}  user: {user or '-'}")
        typer.echo(f"key:    {new.plaintext}")
        typer.echo("Store the key now: it is not shown again.", err=True)


@apikeys_cli.command("list")
def list_() -> None:
    """List keys (prefix, role, scope, last use); never the keys themselves."""
    with _session() as session:
        for key in api_keys.list_keys(session):
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            typer.echo(
                f"{key.id}  {key.prefix}  {key.role:<8}  user={key.user_id or '-'}  "
                f"last_used={used}  {state}  {key.name}"
            )


@apikeys_cli.command("revoke")
def revoke(key: Annotated[str, typer.Argument(help="Key id or prefix")]) -> None:
    """Revoke a key at once."""
    with _session() as session:
        row = operation_service.revoke_api_key(session, ACTOR, key, system_clock())
        if row is None:
            typer.echo(f"no key {key!r}", err=True)
            raise typer.Exit(1)
        typer.echo(f"revoked {row.prefix}")
