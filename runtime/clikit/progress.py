"""Progress of long work: on a terminal a bar with an ETA under the printed lines; elsewhere (CI, logs,
pipes) the same lines alone, with no control characters.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress as Bar
    from rich.progress import TaskID


class Progress:
    """`with Progress(total, "exporting") as bar: bar.line("..."); bar.advance()`.

    `restart(total, description)` starts a new bar (a training epoch); `line` prints above the bar.
    """

    def __init__(self, total: int, description: str, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.total, self.description = total, description
        self.bar: Bar | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> Progress:
        if self.stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self.bar.start()
            self.restart(self.total, self.description)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def restart(self, total: int, description: str) -> None:
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task, steps)

    def update(self, completed: int, total: int | None = None) -> None:
        """Set the steps done (and the total, when it is known only now)."""
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=completed, total=total)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)
