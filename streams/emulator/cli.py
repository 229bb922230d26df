"""``reconciler moodle-emulator``: serve the Moodle emulator from a seed file."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click
from aiohttp import web

from streams.emulator.app import Emulator, create_app, load_seed_file
from streams.emulator.cost import PROFILES
from streams.emulator.faults import Faults, Latency, RateLimit
from streams.emulator.state import VERSIONS, SqliteStore

_DEFAULT_SEED = Path(__file__).with_name("seed_example.json")


@click.command(name="moodle-emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8099, show_default=True, type=int)
@click.option(
    "--seed",
    "seed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=_DEFAULT_SEED,
    show_default=True,
    help="Seed JSON (docs/moodle-emulator.md).",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Persist the state to this SQLite file (reloaded at start if present).",
)
@click.option(
    "--version", "version", type=click.Choice(VERSIONS), help="Moodle version to emulate."
)
@click.option(
    "--max-input-vars", type=int, help="PHP max_input_vars (default from seed, else 1000)."
)
@click.option("--debug/--no-debug", default=None, help="Include debuginfo in errors.")
@click.option(
    "--php",
    "php",
    help="PHP version (default from seed, else 8.2); below 8, Moodle 4.4's wsnoinstance is JSON.",
)
@click.option(
    "--profile",
    default="instant",
    show_default=True,
    type=click.Choice(sorted(PROFILES)),
    help="Cost model: 'calibrated' costs what the §11 site paid per call and row.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="PHP workers serving calls at once; more calls wait (default: unbounded).",
)
@click.option("--cost-seed", type=int, help="Seed of the cost jitter random generator.")
@click.option(
    "--latency",
    "latency",
    default="none",
    type=click.Choice(["none", "fixed", "uniform", "exponential", "lognormal"]),
)
@click.option("--latency-ms", default=0.0, type=float, help="Mean latency (ms).")
@click.option(
    "--latency-max-ms", default=0.0, type=float, help="Latency cap / uniform upper bound."
)
@click.option("--error-rate", default=0.0, type=float, help="Fraction of calls failing.")
@click.option(
    "--error-kind",
    default="http503",
    type=click.Choice(
        ["http500", "http502", "http503", "phpfatal", "dmlwriteexception", "dbconnectionfailed"]
    ),
)
@click.option("--timeout-rate", default=0.0, type=float, help="Fraction of calls that hang.")
@click.option("--timeout-s", default=60.0, type=float, help="How long a hanging call hangs.")
@click.option("--maintenance", is_flag=True, help="Answer sitemaintenance to every call.")
@click.option("--http503", is_flag=True, help="Answer HTTP 503 (CLI maintenance page).")
@click.option("--rate-limit-rps", type=float, help="Answer 429 above this many calls/s.")
@click.option("--rate-limit-burst", default=10, type=int, show_default=True)
@click.option("--fault-seed", type=int, help="Seed of the fault random generator.")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def command(
    host: str,
    port: int,
    seed: Path,
    state_file: Path | None,
    version: str | None,
    max_input_vars: int | None,
    debug: bool | None,
    php: str | None,
    profile: str,
    workers: int | None,
    cost_seed: int | None,
    latency: str,
    latency_ms: float,
    latency_max_ms: float,
    error_rate: float,
    error_kind: str,
    timeout_rate: float,
    timeout_s: float,
    maintenance: bool,
    http503: bool,
    rate_limit_rps: float | None,
    rate_limit_burst: int,
    fault_seed: int | None,
    access_log: bool,
) -> None:
    """Serve an emulated Moodle at http://HOST:PORT/webservice/rest/server.php."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    faults = Faults.model_validate(
        {
            "latency": Latency.model_validate(
                {"distribution": latency, "mean_ms": latency_ms, "max_ms": latency_max_ms}
            ),
            "error_rate": error_rate,
            "error_kind": error_kind,
            "timeout_rate": timeout_rate,
            "timeout_s": timeout_s,
            "maintenance": maintenance,
            "http503": http503,
            "rate_limit": RateLimit(rps=rate_limit_rps, burst=rate_limit_burst)
            if rate_limit_rps
            else None,
            "seed": fault_seed,
        }
    )
    overrides = {
        k: v
        for k, v in {
            "version": version, "max_input_vars": max_input_vars, "debug": debug, "php": php
        }.items()
        if v is not None
    }  # fmt: skip
    store = SqliteStore(state_file) if state_file is not None else None
    emulator = Emulator(
        load_seed_file(seed),
        faults,
        store,
        overrides,
        profile=profile,
        workers=workers,
        cost_seed=cost_seed,
    )
    click.echo(
        f"Moodle emulator {emulator.state.site.version} on http://{host}:{port}"
        f"/webservice/rest/server.php (seed {seed}; profile {profile}, "
        f"{workers or 'unbounded'} workers)"
    )
    app = create_app(emulator)
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        print=None,
        loop=asyncio.new_event_loop(),
    )
