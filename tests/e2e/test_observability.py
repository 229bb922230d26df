"""The stack's real Prometheus scrapes a real worker (and Kafka and Connect through their JMX
exporters) while enrolments flow: every dashboard panel's query returns data, every metric
the dashboard and the alert rules name is scraped, and the rules evaluate without error."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streams.ops.dashboard import DASHBOARD_FILE, queries
from streams.ops.promql import metric_names
from tests.support.backends import Services
from tests.support.e2e import Run, e2e_run, eventually, seed, wait_until
from tests.unit.ops.support import alerts

pytestmark = pytest.mark.e2e

ELEMENTS = ["OA", "OB"]


@pytest.fixture(scope="module")
def run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    if services.stack is None:
        pytest.skip("the stack's Prometheus and JMX exporters are the process backend's")
    with e2e_run(services, tmp_path_factory.mktemp("obs"), size=20) as run:
        run.start_emulator(seed(run.slice, ELEMENTS, 20))
        # The port the stack's Prometheus scrapes (job "reconciler" and "reconciler-faust").
        run.start_worker(
            RECONCILER_HTTP_PORT=str(services.worker_metrics_port),
            RECONCILER_LAG_INTERVAL_S="1",
        )
        run.worker_port = services.worker_metrics_port
        yield run


def _prom(services: Services, path: str, **params: Any) -> Any:
    body = httpx.get(f"{services.prometheus_url}{path}", params=params, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]


def _latest(services: Services, expr: str) -> list[dict[str, Any]]:
    return list(_prom(services, "/api/v1/query", query=expr)["result"])


@pytest.fixture(scope="module")
def traffic(run: Run, services: Services) -> float:
    """Additions and a removal applied in Moodle, and Prometheus has scraped them."""
    started = time.time()
    for i in range(6):
        run.student(i, *ELEMENTS)

    async def applied() -> bool:
        roster = await run.roster("OB")
        return len(roster) == 6

    asyncio.run(eventually(applied, 90, "six students enrolled"))
    run.sql(run.uncontract(0, "OA"))  # a removal, applied after the 3 s grace window

    async def suspended() -> bool:
        return (await run.roster("OA")).get(run.slice.etu(0)) == "suspended"

    asyncio.run(eventually(suspended, 90, "removal applied"))
    wait_until(
        lambda: _latest(
            services,
            'sum(increase(reconciler_commit_to_applied_seconds_count{change="remove"}[1m])) > 0'
            " and on () sum(reconciler_consumer_lag_messages) >= 0",
        ),
        60,
        "Prometheus saw the removal's latency grow, and the consumer lag",
    )
    return started


def test_prometheus_scrapes_worker_faust_kafka_and_connect(
    services: Services, traffic: float
) -> None:
    targets = {
        t["labels"]["job"]: t
        for t in _prom(services, "/api/v1/targets", state="active")["activeTargets"]
    }
    for job in ("reconciler", "reconciler-faust", "kafka", "kafka-connect"):
        assert targets[job]["health"] == "up", (job, targets[job].get("lastError"))
    assert _latest(services, 'reconciler_build_info{job="reconciler"}')
    assert _latest(services, 'faust_messages_received_total{job="reconciler-faust"} > 0')


def test_every_dashboard_panel_query_returns_data(services: Services, traffic: float) -> None:
    """What Grafana would draw over the run: a range query per panel target, each with at least
    one number (not only NaN: a quantile of nothing)."""
    data = json.loads(DASHBOARD_FILE.read_text())
    empty: list[str] = []
    answered: list[str] = []
    end = time.time()
    for title, expr in queries(data):
        concrete = expr.replace("$__rate_interval", "20s")
        result = _prom(
            services,
            "/api/v1/query_range",
            query=concrete,
            start=traffic - 60,
            end=end,
            step="2s",
        )["result"]
        finite = [v for series in result for _, v in series["values"] if v not in ("NaN", "+Inf")]
        (answered if finite else empty).append(f"{title}: {expr}")
    print(f"\n{len(answered)} panel queries returned data:\n  " + "\n  ".join(answered))
    assert empty == [], "panel queries without data:\n" + "\n".join(empty)
    assert len(answered) >= 30


def test_every_metric_named_by_the_dashboard_and_rules_is_scraped(
    services: Services, traffic: float
) -> None:
    scraped = set(_prom(services, "/api/v1/label/__name__/values"))
    data = json.loads(DASHBOARD_FILE.read_text())
    used = {n for _, expr in queries(data) for n in metric_names(expr)}
    used |= {n for rule in alerts(recording=True) for n in metric_names(rule["expr"])}
    assert used - scraped == set()
    assert {n.split("_")[0] for n in used} >= {"reconciler", "kafka", "debezium", "faust", "up"}


def test_the_alert_rules_evaluate_without_error(services: Services, traffic: float) -> None:
    groups = _prom(services, "/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert {r["name"] for r in rules if r["type"] == "alerting"} == {a["alert"] for a in alerts()}
    assert [r for r in rules if r["health"] != "ok"] == []
    # the recording rule computes a latency once additions were applied (next evaluation)
    wait_until(
        lambda: _latest(services, "reconciler:commit_to_applied_seconds:p95_10m >= 0"),
        30,
        "the p95 recording rule has a value",
    )


def test_connect_and_debezium_health_are_exported(services: Services, traffic: float) -> None:
    status = _latest(services, 'kafka_connect_connector_status{connector="apogee-postgres"}')
    assert {s["metric"]["status"] for s in status} == {"running"}
    tasks = _latest(services, 'kafka_connect_connector_task_status{connector="apogee-postgres"}')
    assert {s["metric"]["status"] for s in tasks} == {"running"}
    seen = _latest(
        services, 'debezium_metrics_TotalNumberOfEventsSeen{context="streaming", name="apogee"}'
    )
    assert seen and float(seen[0]["value"][1]) > 0
    assert _latest(services, 'debezium_metrics_QueueRemainingCapacity{context="streaming"} > 0')
    # snapshot progress: 1 after a snapshot this Connect process ran, 0 when it resumed
    assert _latest(services, 'debezium_metrics_SnapshotCompleted{context="snapshot"} >= 0')
    assert _latest(
        services, 'kafka_server_brokertopicmetrics_messagesinpersec_total{topic=~"apogee[.].*"} > 0'
    )
