"""Where the real services for integration tests come from.

Two backends give the same :class:`Services` handle:

* ``process`` (default): the project's own ``reconciler stack`` (plain processes).
* ``containers``: testcontainers, used when ``RECONCILER_TEST_BACKEND=containers``; it
  skips with the reason when no Docker engine is reachable (as on the project's CI).

``RECONCILER_TEST_STACK=external`` uses an already running process stack and starts
nothing, so stopping a part by hand makes the integration tests fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from streams.devstack import Stack, StackConfig


@dataclass(frozen=True)
class Services:
    """Addresses of the real services a test may use."""

    bootstrap_servers: str
    connect_url: str
    postgres_dsn: str
    prometheus_url: str
    worker_metrics_host: str
    worker_metrics_port: int
    stack: Stack | None = None


def backend_name() -> str:
    return os.environ.get("RECONCILER_TEST_BACKEND", "process")


@contextmanager
def process_services() -> Iterator[Services]:
    stack = Stack(StackConfig())
    external = os.environ.get("RECONCILER_TEST_STACK") == "external"
    started = False
    if not external and not stack.healthy():
        stack.up(report=lambda line: print(f"[stack] {line}"))
        started = True
    cfg = stack.cfg
    try:
        yield Services(
            bootstrap_servers=cfg.bootstrap_servers,
            connect_url=cfg.connect_url,
            postgres_dsn=stack.postgres.dsn(),
            prometheus_url=cfg.prometheus_url,
            worker_metrics_host=cfg.host,
            worker_metrics_port=cfg.worker_metrics_port,
            stack=stack,
        )
    finally:
        if started:
            stack.down(report=lambda line: print(f"[stack] {line}"))


def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers; otherwise why not."""
    try:
        import docker  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "testcontainers extra not installed (pip install -e '.[containers]')"
    try:
        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine reachable ({type(exc).__name__}: {str(exc)[:120]})"
    return None


@contextmanager
def container_services() -> Iterator[Services]:
    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"containers backend: {reason}")
    from tests.support.containers import started_containers

    with started_containers() as services:
        yield services
