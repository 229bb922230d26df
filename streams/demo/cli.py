"""``reconciler demo``: options, output streams, exit code (0 when Moodle matches APOGÉE)."""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType

import click
from rich.console import Console

from streams.demo.display import Display
from streams.demo.runner import DemoOptions, run_demo
from streams.demo.summary import Summary
from streams.workload.generator import MAX_STUDENTS


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as Ctrl-C does: children stopped


@click.command(name="demo")
@click.option(
    "--students",
    type=click.IntRange(30, MAX_STUDENTS),
    default=1500,
    show_default=True,
    help="Students in the generated year (25 contract elements each).",
)
@click.option("--seed", type=int, default=2026, show_default=True, help="Workload seed.")
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(0, 3600),
    default=15.0,
    show_default=True,
    help="Grace window before a removal (seconds); production default 3600.",
)
@click.option("--follow", is_flag=True, help="After the verdict, keep editing and showing.")
@click.option(
    "--shadow",
    is_flag=True,
    help="Beside the Database method: shadow mode, shadow-report, cutover, writes on, "
    "Database method disabled (the README's cut-over runbook).",
)
@click.option("--json", "as_json", is_flag=True, help="Final summary as JSON on stdout.")
def command(
    students: int, seed: int, grace_s: float, follow: bool, shadow: bool, as_json: bool
) -> None:
    """Run the reconciler end to end on the local stack with a generated APOGÉE year.

    Brings the stack up (RECONCILER_STACK_* settings), starts the Moodle emulator and a worker,
    commits a year's initial load and the term's events, shows live progress, and ends with
    whether Moodle matches APOGÉE. Exit code 0 when it does, 1 otherwise.
    """
    console = Console(stderr=as_json, highlight=False)
    signal.signal(signal.SIGTERM, _interrupt)
    options = DemoOptions(
        students=students, seed=seed, grace_s=grace_s, follow=follow, shadow=shadow
    )
    title = f"APOGÉE → Moodle · {students:,} students · seed {seed} · grace {grace_s:g} s"
    with Display(console, title) as display:
        summary = run_demo(options, display, lambda s: _print(console, s))
    if follow:
        console.print(f"Stopped after {summary.follow_edits} contract edit(s).", soft_wrap=True)
    console.print(
        "The worker and the emulator are stopped; the stack is still up "
        "(`reconciler stack down` stops it).",
        soft_wrap=True,
        markup=False,
    )
    if as_json:
        click.echo(json.dumps(summary.as_json(), ensure_ascii=False, indent=2))
    sys.exit(0 if summary.matches else 1)


def _print(console: Console, summary: Summary) -> None:
    verdict = "bold green" if summary.matches else "bold red"
    for line in summary.lines():
        style = verdict if line is summary.verdict else None
        console.print(line, style=style, soft_wrap=True, markup=False)
