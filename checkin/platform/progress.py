"""Progress of a long job (imports, exports, backfill, city generation, load seeding) on stderr.

On a terminal a ``rich.progress`` bar shows the count, the rate and the time left; when the stream is
not a terminal (a pipe, a log file, CI) a plain line says the same at most once a minute
(``label: N of M unit (P %), R unit/s, about T s left``), so a job an hour long is not silent in its
log. Either way :meth:`Progress.finish` writes one plain summary line, ``label: N unit in S s (R/s)``,
so logs keep the figures without the redraws.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text


def _rate(per_s: float) -> str:
    """A rate for a line of text: whole numbers, or two significant digits below 10 (a slow job's
    0.013 days/s is not 0)."""
    return f"{per_s:,.0f}" if per_s >= 10 else f"{per_s:.2g}"


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


class Progress:
    """One job's progress. ``total`` may be 0 or None when unknown; ``in_bytes`` counts bytes (shown
    as MB and MB/s) while :meth:`finish` may report another count (lines, rows) for the summary.
    ``every_s``: the least time between two plain progress lines off the terminal."""

    def __init__(
        self,
        label: str,
        total: float | None,
        unit: str = "",
        stream: IO[str] | None = None,
        *,
        in_bytes: bool = False,
        every_s: float = 60.0,
    ) -> None:
        self.label = label
        self.total = total or None
        self.unit = unit
        self.in_bytes = in_bytes
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0.0
        self.started = time.monotonic()
        self.every_s = every_s
        self._last_line = self.started
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: RichProgress | None = None
        self._task = None
        if self.live:
            counts: list[ProgressColumn] = (
                [DownloadColumn(), TransferSpeedColumn()]
                if in_bytes
                else [MofNCompleteColumn(), TextColumn(unit), _RateColumn(unit)]
            )
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                *counts,
                TimeRemainingColumn(),
                console=Console(file=self.stream, stderr=self.stream is sys.stderr),
                transient=True,
                refresh_per_second=4,
            )
            self._task = self._bar.add_task(label, total=self.total)
            self._bar.start()

    def advance(self, n: float) -> None:
        self.update(self.done + n)

    def update(self, done: float) -> None:
        """Set the count done so far."""
        self.done = done
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done)
        elif not self.live:
            now = time.monotonic()
            if now - self._last_line >= self.every_s:
                self._last_line = now
                self._plain_line(now - self.started)

    def _plain_line(self, elapsed: float) -> None:
        scale, unit = (1e6, "MB") if self.in_bytes else (1.0, self.unit)
        done = self.done / scale
        rate = done / max(elapsed, 1e-9)
        text = f"{self.label}: {done:,.0f}"
        if self.total:
            total = self.total / scale
            text += f" of {total:,.0f} {unit} ({100 * self.done / self.total:.0f} %)"
            left = (total - done) / rate if rate > 0 else None
            text += f", {_rate(rate)} {unit}/s" + (f", about {left:,.0f} s left" if left is not None else "")
        else:
            text += f" {unit}, {_rate(rate)} {unit}/s"
        self.stream.write(text.replace("  ", " ") + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (a refused row, a warning), above the bar while it is drawn."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def finish(self, count: float | None = None, unit: str | None = None) -> float:
        """Stop the bar and write the summary line; returns the seconds since the start. ``count``
        and ``unit`` name what the summary counts when it is not the bar's own count."""
        elapsed = time.monotonic() - self.started
        self.close()
        n = self.done if count is None else count
        what = self.unit if unit is None else unit
        rate = n / max(elapsed, 1e-9)
        size = f" ({self.done / 1e6:,.1f} MB)" if self.in_bytes and count is not None else ""
        shown = f"{n:,.0f}" if float(n).is_integer() or n >= 100 else f"{n:,.1f}"
        self.stream.write(
            f"{self.label}: {shown} {what}{size} in {elapsed:.1f} s ({_rate(rate)} {what}/s)".replace(
                "  ", " "
            )
            + "\n"
        )
        self.stream.flush()
        return elapsed

    def close(self) -> None:
        """Stop drawing (no summary); safe to call twice."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
