"""Progress bars with totals for long CLI commands (rich, which typer ships), on stderr
so a command's own output stays pipeable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def total(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def done(self, completed: int) -> None:
        self._progress.update(self._task, completed=completed)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Bar]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield Bar(progress, progress.add_task(description, total=total))
