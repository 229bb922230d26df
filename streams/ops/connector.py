"""``reconciler connector-register``: register a connector file with Kafka Connect and wait.

The chart's registration Job runs it against plain Kafka Connect (where Strimzi's
KafkaConnector is not used)::

    reconciler connector-register --connect-url http://connect:8083 \\
        --file connectors/apogee-postgres.json

PUT ``/connectors/<name>/config`` creates or updates (idempotent, safe to re-run on every
upgrade); then it waits for the connector and its tasks to run. Exit codes: 0 running,
1 refused or FAILED (with the task's trace), 2 not running before the deadline.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import httpx

from streams.devstack.connect import load_connector

__all__ = ["command", "register", "wait_running"]


def register(http: httpx.Client, path: Path) -> str:
    """Create or update the connector of ``path`` (REST form); returns its name."""
    spec = load_connector(path)
    response = http.put(f"/connectors/{spec['name']}/config", json=spec["config"])
    if response.status_code not in (200, 201):
        raise click.ClickException(
            f"Connect refused {path.name}: HTTP {response.status_code} {response.text[:500]}"
        )
    return str(spec["name"])


def wait_running(http: httpx.Client, name: str, timeout_s: float, every_s: float = 1.0) -> str:
    """'' once the connector and every task run; raises on FAILED; the last state otherwise."""
    deadline = time.monotonic() + timeout_s
    state = "unknown"
    while time.monotonic() < deadline:
        try:
            body = http.get(f"/connectors/{name}/status").json()
        except (httpx.HTTPError, ValueError) as exc:
            state = f"status unreadable ({type(exc).__name__})"
        else:
            tasks = body.get("tasks", [])
            states = [body.get("connector", {}).get("state"), *(t.get("state") for t in tasks)]
            if "FAILED" in states:
                trace = "\n".join(t.get("trace", "")[:1500] for t in tasks if t.get("trace"))
                raise click.ClickException(f"connector {name} FAILED: {states}\n{trace}")
            if tasks and all(s == "RUNNING" for s in states):
                return ""
            state = str(states)
        time.sleep(every_s)
    return state


@click.command(name="connector-register")
@click.option("--connect-url", required=True, help="Kafka Connect REST URL.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Connector file in REST form ({name, config}).",
)
@click.option("--timeout", "timeout_s", default=300.0, show_default=True, help="Seconds.")
def command(connect_url: str, path: Path, timeout_s: float) -> None:
    """Register (create or update) a connector with Kafka Connect and wait until it runs."""
    with httpx.Client(base_url=connect_url, timeout=30.0) as http:
        name = register(http, path)
        click.echo(f"connector {name}: registered with {connect_url}")
        left = wait_running(http, name, timeout_s)
    if left:
        click.echo(f"connector {name} not running after {timeout_s:.0f}s: {left}", err=True)
        raise SystemExit(2)
    click.echo(f"connector {name}: RUNNING")
