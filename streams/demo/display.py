"""The demo's terminal output: step and event lines, and the live figures.

In a terminal the figures are a ``rich`` live panel under the scrolling lines, refreshed four
times a second. Elsewhere (a pipe, CI, a test) the same figures are one plain line every few
seconds when they changed, so a log stays readable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.demo.monitor import Snapshot

__all__ = ["Display", "fmt_s", "progress_line"]


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"


def _parked(s: Snapshot) -> str:
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(s.parked_enrolments.items()) if n)
    return f"{s.parked}" + (f" ({reasons})" if reasons else "")


def progress_line(s: Snapshot, phase: str, elapsed: float) -> str:
    return (
        f"[{elapsed:5.0f}s] {phase} | events in {s.events_in:,} | applied {s.applied_total:,} | "
        f"pending {s.pending} in flight {s.in_flight} | parked {_parked(s)} "
        f"courses {len(s.parked_courses)} | held {s.held} | "
        f"latency p50 {fmt_s(s.p50)} p99 {fmt_s(s.p99)} | Moodle calls {s.moodle_calls:,}"
    )


class Display:
    """Lines for what happens, live figures for how far it got."""

    def __init__(self, console: Console, title: str, plain_every_s: float = 5.0) -> None:
        self.console = console
        self.title = title
        self.phase = "starting"
        self.started = time.monotonic()
        self.plain_every_s = plain_every_s
        self._source: Callable[[], Snapshot] | None = None
        self._live: Live | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- lines -------------------------------------------------------------------------------
    def step(self, text: str) -> None:
        self.console.print(Text.assemble(("▸ ", "bold cyan"), text), soft_wrap=True)

    def event(self, text: str) -> None:
        self.console.print(Text.assemble(("  ● ", "bold magenta"), text), soft_wrap=True)

    def outcome(self, ok: bool, text: str) -> None:
        mark = ("    ✓ ", "bold green") if ok else ("    ✗ ", "bold red")
        self.console.print(Text.assemble(mark, text), soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(Text(f"    {text}", style="dim"), soft_wrap=True)

    # -- live figures ------------------------------------------------------------------------
    def follow(self, source: Callable[[], Snapshot]) -> None:
        """Show the figures of ``source`` until :meth:`close`."""
        self._source = source
        if self.console.is_terminal:
            self._live = Live(
                get_renderable=self._panel,
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()
        else:
            self._ticker = threading.Thread(target=self._tick, name="demo-ticker", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        last = ""
        while not self._stop.wait(self.plain_every_s):
            line = self._line()
            if line is not None and line.split("]", 1)[1] != last:
                last = line.split("]", 1)[1]
                self.console.print(line, soft_wrap=True, markup=False, highlight=False)

    def _line(self) -> str | None:
        if self._source is None:
            return None
        return progress_line(self._source(), self.phase, self.elapsed)

    def _panel(self) -> Group:
        s = self._source() if self._source else Snapshot()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("phase", self.phase)
        grid.add_row("events in", f"{s.events_in:,} CDC records read by the worker")
        grid.add_row("applied", f"{s.applied_total:,} enrolment changes made in Moodle")
        grid.add_row("pending", f"{s.pending} course(s) to reconcile, {s.in_flight} in flight")
        grid.add_row(
            "parked",
            f"{_parked(s)} enrolment(s); {len(s.parked_courses)} course(s)"
            + "".join(f"  {c}: {p.get('reason')}" for c, p in list(s.parked_courses.items())[:3]),
        )
        grid.add_row("held", f"{s.held} removal(s) held by the mass-removal guard")
        grid.add_row("latency", f"p50 {fmt_s(s.p50)}  p99 {fmt_s(s.p99)}  (commit → applied)")
        grid.add_row("Moodle", f"{s.moodle_calls:,} web-service calls")
        header = Text.assemble(
            (self.title, "bold"), (f"   {fmt_s(self.elapsed)}", "dim"), style="on grey11"
        )
        rows: list[Table | Text] = [header, grid]
        if s.error:
            rows.append(Text(f"(last poll failed: {s.error[:100]})", style="yellow"))
        return Group(*rows)

    def close(self) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._ticker is not None:
            self._ticker.join(2)
            self._ticker = None

    def __enter__(self) -> Display:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
