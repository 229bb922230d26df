"""``reconciler stack up | status | down | fetch``: the local real services."""

from __future__ import annotations

import sys

import click

from streams.devstack.config import StackConfig
from streams.devstack.errors import StackError
from streams.devstack.jars import ensure_jars
from streams.devstack.stack import Stack


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


@click.group()
def stack() -> None:
    """Local Kafka (KRaft), Kafka Connect + Debezium, PostgreSQL (APOGÉE) and Prometheus."""


@stack.command()
def fetch() -> None:
    """Resolve the pinned jars from Maven Central (cached)."""
    cfg = StackConfig()
    try:
        ran = ensure_jars(cfg)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"jars {'resolved' if ran else 'already cached'} in {cfg.jars_dir}")


@stack.command()
def up() -> None:
    """Start every part and wait until each is healthy (idempotent)."""
    s = Stack()
    click.echo(f"stack up (state in {s.cfg.state_dir}; versions {s.versions()})")
    try:
        timings = s.up(report=click.echo)
    except StackError as exc:
        click.echo(f"stack up FAILED: {exc}", err=True)
        sys.exit(1)
    click.echo(f"stack up: all parts healthy in {sum(timings.values()):.1f}s")


@stack.command()
def status() -> None:
    """Report each part; exit 1 if any part is unhealthy."""
    s = Stack()
    parts = s.status()
    for p in parts:
        state = "OK  " if p.healthy else ("DOWN" if p.required else "--  ")
        click.echo(
            f"{state} {p.name:<26} pid={p.pid or '-':<8} rss={_mib(p.rss_bytes):<9} {p.detail}"
        )
    click.echo(f"logs: {s.cfg.logs_dir}")
    if not all(p.healthy for p in parts if p.required):
        sys.exit(1)


@stack.command()
def down() -> None:
    """Stop every part; data and logs stay under the state directory."""
    Stack().down(report=click.echo)
