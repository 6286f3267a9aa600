"""`python -m app keys ...`: token-vault keys (generate, rotate)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.config import get_settings
from app.db import make_engine, make_session_factory
from app.progress import progress_bar
from app.security.vault import (
    RotationReport,
    VaultError,
    build_vault,
    count_encrypted,
    generate_key,
)

keys_cli = typer.Typer(no_args_is_help=True, help="Token encryption keys")


@keys_cli.command("generate")
def generate() -> None:
    """Print a new Fernet key (put it first in TOKEN_ENCRYPTION_KEYS)."""
    typer.echo(generate_key())


@keys_cli.command("rotate")
def rotate(
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per committed batch")] = 1000,
) -> None:
    """Re-encrypt every stored token under the newest key; safe to re-run.

    Afterwards the older keys can be removed from TOKEN_ENCRYPTION_KEYS."""
    from app.security.vault import rotate_all

    settings = get_settings()
    try:
        vault = build_vault(settings, needed=False)
    except VaultError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if vault is None:
        typer.echo("error: TOKEN_ENCRYPTION_KEYS is not set; nothing to rotate to.", err=True)
        raise typer.Exit(2)
    session_factory = make_session_factory(make_engine(settings))
    try:
        with progress_bar("re-encrypting", count_encrypted(session_factory)) as bar:

            def progress(report: RotationReport) -> None:
                bar.done(report.rotated + report.already_current)

            report = rotate_all(session_factory, vault, batch_size=batch_size, progress=progress)
    except VaultError as exc:
        typer.echo(f"error: {exc} (is the old key still listed after the new one?)", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"re-encrypted {report.rotated}, already current {report.already_current}; "
        f"{'the older keys can now be removed' if vault.key_count > 1 else 'one key in use'}"
    )
