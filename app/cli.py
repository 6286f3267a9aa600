"""Operator CLI: `python -m app <command>`.

Each room may add its own command group (a typer.Typer in its own module), registered
at the bottom of this file, so this file stays a table of contents.
"""

from __future__ import annotations

import typer

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Scheduling agent")
