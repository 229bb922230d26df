"""The real Prometheus scrapes the worker's metrics endpoint (here served by the test)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tests.support.backends import Services

pytestmark = pytest.mark.integration


@pytest.fixture
def served_value(services: Services) -> Iterator[float]:
    registry = CollectorRegistry()
    gauge = Gauge("reconciler_scrape_probe", "Set by the integration test", registry=registry)
    value = float(random.randint(1, 10**6))
    gauge.set(value)
    server, thread = start_http_server(
        services.worker_metrics_port, services.worker_metrics_host, registry=registry
    )
    try:
        yield value
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _target(prom: str) -> dict[str, object] | None:
    body = httpx.get(f"{prom}/api/v1/targets", params={"state": "active"}, timeout=5).json()
    for t in body["data"]["activeTargets"]:
        if t["labels"].get("job") == "reconciler":
            return dict(t)
    return None


def test_prometheus_reports_a_successful_scrape(services: Services, served_value: float) -> None:
    started = time.time()
    deadline = time.monotonic() + 60
    target: dict[str, object] | None = None
    samples: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        target = _target(services.prometheus_url)
        if target and target["health"] == "up":
            last = datetime.fromisoformat(
                str(target["lastScrape"]).replace("Z", "+00:00")
            ).timestamp()
            q = httpx.get(
                f"{services.prometheus_url}/api/v1/query",
                params={"query": "reconciler_scrape_probe"},
                timeout=5,
            ).json()
            samples = q["data"]["result"]
            if last >= started and samples and float(samples[0]["value"][1]) == served_value:
                break
        time.sleep(0.5)
    assert target is not None, "no 'reconciler' scrape job in Prometheus"
    assert target["health"] == "up", target.get("lastError")
    assert samples and float(samples[0]["value"][1]) == served_value
