"""What every operator command shares: exit codes, times, progress, tables, JSON lines.

* **Exit codes** (:class:`Exit`) are the same for every command, so a script can rely on
  them: 0 done; 1 done, and the answer needs a look (drift found, nothing matched, a what-if
  that differs, invalid lines); 2 bad arguments or configuration; 3 Kafka unreachable or a
  topic missing; 4 Moodle unreachable or refusing; 5 the window asked for starts before the
  history retention kept (the answer is incomplete).
* **Times** on the command line are ISO 8601 (``2026-03-10``, ``2026-03-10T14:02``,
  ``…+01:00``; no offset means UTC), ``now``, or a duration back from now (``2h``, ``3d``).
* **Progress** (rich: a bar with the rate and the time left) goes to stderr and only when it
  is a terminal; stdout stays data (a table, or JSON lines with ``--json``).
* **Tables** are plain fixed-width text, at most :data:`WIDTH` (100) columns, so they read
  in a 100-column terminal and survive ``| less`` and log files unchanged.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = [
    "EXIT_CODES",
    "WIDTH",
    "Exit",
    "Moment",
    "emit_json",
    "fail",
    "fmt_duration",
    "fmt_time",
    "parse_moment",
    "progress",
    "render_table",
    "say",
]

WIDTH = 100
Advance = Callable[[int], None]


class Exit(IntEnum):
    OK = 0
    ATTENTION = 1
    USAGE = 2
    KAFKA = 3
    MOODLE = 4
    EXPIRED = 5


EXIT_CODES = (
    "Exit codes: 0 done; 1 done, and the answer needs a look ({attention}); "
    "2 bad arguments or configuration; 3 Kafka unreachable or a topic missing; "
    "4 Moodle unreachable or refusing; 5 the window starts before the retained history."
)


def epilog(attention: str, examples: Sequence[str]) -> str:
    """The ``--help`` epilog: examples, then the exit codes (``\\b`` keeps click's wrapping off)."""
    lines = ["\b", "Examples:", *(f"  {e}" for e in examples), ""]
    return "\n".join(lines) + "\n" + EXIT_CODES.format(attention=attention)


def fail(code: Exit, message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


# -- times ---------------------------------------------------------------------------------------
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """``2026-03-10``, ``2026-03-10T14:02[:05][Z|+01:00]``, ``now``, ``today``,
    ``yesterday``, or ``2h`` (that long ago)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if value in ("now", "today"):
        return now
    if value == "yesterday":
        return now - timedelta(days=1)
    found = _DURATION.match(value)
    if found:
        return now - timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use 2026-03-10, 2026-03-10T14:02, …+01:00, now, today, "
            "2h or 3d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Moment(click.ParamType):
    """A click parameter for :func:`parse_moment`."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_moment(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def fmt_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_ms(ms: int | None) -> str:
    return "-" if ms is None else fmt_time(datetime.fromtimestamp(ms / 1000, UTC))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0:  # e.g. the nightly run acting before a removal's grace window ends
        return f"-{fmt_duration(-seconds)}"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def to_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


# -- output --------------------------------------------------------------------------------------
def say(text: str = "", *, err: bool = False) -> None:
    """A line for people: folded within :data:`WIDTH` if it is longer (tables never are)."""
    for line in wrap(text) if len(text) > WIDTH else [text]:
        click.echo(line, err=err)


def emit_json(value: Any) -> None:
    """One JSON object on one line of stdout."""
    click.echo(json.dumps(value, ensure_ascii=False, sort_keys=False, default=str))


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    right: Sequence[int] = (),
    width: int = WIDTH,
    squeeze: int | None = None,
) -> list[str]:
    """Fixed-width lines: columns as wide as their widest cell; if that exceeds ``width`` the
    ``squeeze`` column (default: the widest) is cut with an ellipsis."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    if excess > 0:
        victim = squeeze if squeeze is not None else widths.index(max(widths))
        widths[victim] = max(len(headers[victim]), widths[victim] - excess)

    def line(values: Sequence[str]) -> str:
        out = []
        for i, value in enumerate(values):
            text = value if len(value) <= widths[i] else value[: max(0, widths[i] - 1)] + "…"
            out.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return [line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in cells)]


def wrap(text: str, width: int = WIDTH, indent: str = "  ") -> list[str]:
    """Prose (headers, summaries, warnings) folded within ``width``; continuation indented."""
    import textwrap

    return textwrap.wrap(
        text, width, subsequent_indent=indent, break_long_words=True, break_on_hyphens=False
    ) or [""]


def clip(text: str, width: int = WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- progress ------------------------------------------------------------------------------------
@contextmanager
def progress(
    description: str, total: int | None, *, enabled: bool | None = None
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (rate, time left) while the block runs; yields ``advance(n)``.

    Shown only when stderr is a terminal (or ``enabled=True``): scripts and logs get the
    summary line the command prints at the end, not a stream of redraws."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield lambda n: None
        return
    columns: list[ProgressColumn] = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=30),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    console = Console(stderr=True, width=min(WIDTH, _terminal_width()))
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        last = [time.monotonic()]

        def advance(n: int) -> None:
            bar.advance(task, n)
            now = time.monotonic()
            if now - last[0] > 0.1:
                last[0] = now
                bar.refresh()

        yield advance


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return WIDTH


class _RateColumn(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-/s" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")
