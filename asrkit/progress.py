"""Rich progress bars with rates, silenced by --quiet or when stderr is not a terminal."""

from __future__ import annotations

import sys
from time import monotonic

MIN_RATE_SECONDS = 1.0  # no rate or time left before this: a few items over a few milliseconds say nothing


def _clock_text(seconds: float | None) -> str:
    """h:mm:ss, or -:--:-- when unknown."""
    if seconds is None:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """A thin wrapper over rich.progress: `add(description, total, unit)`, `advance(task, n)`, `log(msg)`.

    No bar is drawn under --quiet or when stderr is not a terminal; `log` still prints there unless quiet."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._p = None
        self._started: dict[int, float] = {}  # task -> the clock when it was added
        self._before: dict[int, float] = {}  # task -> what was completed before it was added

    def __enter__(self) -> Progress:
        # a log file or a pipe gets no bar at all: even a transient rich display leaves a blank line there
        if not self.quiet and sys.stderr.isatty():
            from rich.console import Console  # lazy: a quiet or piped run draws no bar
            from rich.progress import (  # lazy: a quiet or piped run draws no bar
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress  # lazy: a quiet or piped run draws no bar

            self._p = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[left]}"),
                console=Console(stderr=True),
            )
            self._p.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)

    def add(self, description: str, total: int, unit: str = "", completed: float = 0) -> int:
        """A new bar; `completed`: work done before (a resumed epoch), shown but not counted in the rate."""
        if self._p is None:
            return 0
        task = self._p.add_task(
            description, total=total, completed=completed, rate="", left=_clock_text(None), unit=unit
        )
        self._started[task] = monotonic()
        self._before[task] = completed
        return task

    def rate(self, task: int) -> float | None:
        """Items per second since the task was added (None in its first MIN_RATE_SECONDS)."""
        if self._p is None or task not in self._started:
            return None
        elapsed = monotonic() - self._started[task]
        # rich's own speed divides a burst of completions by the few milliseconds between them (141574.9 utt/s)
        if elapsed < MIN_RATE_SECONDS:
            return None
        return (self._p.tasks[task].completed - self._before[task]) / elapsed

    def advance(self, task: int, n: float = 1, rate: str | None = None) -> None:
        if self._p is None:
            return
        self._p.update(task, advance=n)
        t = self._p.tasks[task]
        speed = self.rate(task)
        left = None
        if t.finished:
            left = 0.0
        elif speed:
            left = max(0.0, (t.total or 0) - t.completed) / speed
        if rate is None:
            rate = f"{speed:.1f} {t.fields.get('unit', '')}/s" if speed else ""
        self._p.update(task, rate=rate, left=_clock_text(left))

    def log(self, msg: str) -> None:
        if self._p is not None:
            self._p.console.print(msg, markup=False, highlight=False)  # paths and ids may hold [brackets]
        elif not self.quiet:
            print(msg, file=sys.stderr)
