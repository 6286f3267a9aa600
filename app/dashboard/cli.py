"""`python -m app dashboard link`: a sign-in link for an owner, printed for the operator
(and by `up` for the demo owner), so trying the dashboard locally needs no SMS."""

from __future__ import annotations

import typer
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.dashboard import auth
from app.models import User, utcnow

cli = typer.Typer(help="Owner dashboard.", no_args_is_help=True)


def sign_in_link(session: Session, settings: Settings, user_id: str) -> str | None:
    user = session.get(User, user_id)
    if user is None:
        return None
    issued = auth.issue(session, settings, user, utcnow())
    session.commit()
    return issued.link


def print_demo_link(settings: Settings) -> None:
    from app.db import make_engine, make_session_factory
    from app.demo import load_demo

    engine = make_engine(settings)
    with make_session_factory(engine)() as session:
        link = sign_in_link(session, settings, load_demo(session).user_id)
    engine.dispose()
    minutes = settings.dashboard_sign_in_minutes
    typer.echo(f"  owner dashboard:     {link}  (single use, {minutes} min)")


@cli.command("link")
def link(user_id: str) -> None:
    """Print a single-use sign-in link for the owner USER_ID."""
    from app.db import make_engine, make_session_factory

    settings = get_settings()
    engine = make_engine(settings)
    with make_session_factory(engine)() as session:
        url = sign_in_link(session, settings, user_id)
    engine.dispose()
    if url is None:
        typer.echo("no such user", err=True)
        raise typer.Exit(1)
    typer.echo(url)
