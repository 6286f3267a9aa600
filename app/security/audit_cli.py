"""`python -m app audit …`: seal the audit log and verify it."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from app.config import get_settings

audit_cli = typer.Typer(no_args_is_help=True, help="Audit trail")


def _parse_checkpoint(value: str) -> tuple[int, str]:
    seq, _, head = value.partition(":")
    if not seq.isdigit() or len(head) != 64:
        raise typer.BadParameter(f"expected SEQ:HEAD_HASH as the seal logs it, got {value!r}")
    return int(seq), head


@audit_cli.command("verify")
def audit_verify(
    expect: Annotated[
        list[str] | None,
        typer.Option(help="A checkpoint SEQ:HASH kept outside the database (the seal's log)"),
    ] = None,
) -> None:
    """Check every entry's signature, the chain and the signed checkpoints; exit 1 when an
    entry was altered, inserted or deleted."""
    from app.db import make_engine, make_session_factory
    from app.security.audit import verify_chain

    expected = [_parse_checkpoint(v) for v in expect or []]
    engine = make_engine(get_settings())
    with make_session_factory(engine)() as session:
        report = verify_chain(session, expect=expected)
    engine.dispose()
    if report.ok:
        pending = report.entries - report.sealed
        typer.echo(
            f"audit chain intact: {report.entries} entries "
            f"({report.sealed} sealed, {pending} awaiting the seal); head {report.head}"
        )
        return
    where = f"entry {report.first_bad_id}" if report.first_bad_id is not None else "the end"
    typer.echo(
        f"audit chain BROKEN at {where}: {report.reason} "
        f"({report.entries} entries verified before it)",
        err=True,
    )
    raise typer.Exit(1)


@audit_cli.command("seal")
def audit_seal(
    loop: Annotated[bool, typer.Option(help="Keep sealing every AUDIT_SEAL_INTERVAL")] = False,
) -> None:
    """Chain new audit entries in order and sign a checkpoint (what the service's
    background loop does)."""
    from app.db import make_engine, make_session_factory
    from app.security.audit import seal_all

    settings = get_settings()
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    try:
        while True:
            sealed = seal_all(factory, settings.audit_seal_batch)
            if not loop:
                typer.echo(f"sealed {sealed} entries")
                return
            time.sleep(max(settings.audit_seal_interval_seconds, 0.1))
    finally:
        engine.dispose()
