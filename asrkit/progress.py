"""Rich progress bars with rates, silenced by --quiet or when stderr is not a terminal."""

from __future__ import annotations

import sys


class Progress:
    """A thin wrapper over rich.progress: `add(description, total, unit)`, `advance(task, n)`."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._p = None

    def __enter__(self) -> Progress:
        if not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._p = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=not sys.stderr.isatty(),
            )
            self._p.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def add(self, description: str, total: int, unit: str = "") -> int:
        if self._p is None:
            return 0
        return self._p.add_task(description, total=total, rate="", unit=unit)

    def advance(self, task: int, n: float = 1, rate: str | None = None) -> None:
        if self._p is None:
            return
        if rate is None:
            t = self._p.tasks[task]
            speed = t.speed
            unit = t.fields.get("unit", "")
            rate = f"{speed:.1f} {unit}/s" if speed else ""
        self._p.update(task, advance=n, rate=rate)

    def log(self, msg: str) -> None:
        if self._p is not None:
            self._p.console.print(msg)
        elif not self.quiet:
            print(msg, file=sys.stderr)
