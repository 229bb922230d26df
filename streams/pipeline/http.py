"""The worker's HTTP endpoints (faust's own web server is off):

* ``/livez`` — the event loop answers (cheap: a liveness probe must not fail under load);
* ``/readyz`` — 200 only once partitions are assigned and the tables recovered;
* ``/metrics`` — Prometheus text format, the reconciler's registry (faust's sensor, when on,
  is served apart on ``/metrics/faust``);
* ``/status`` — JSON for people and the demo: pending, parked and held courses, latencies.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.applier.applier import Applier

__all__ = ["serve", "status_document"]


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def status_document(applier: Applier, ready: bool, extra: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(applier.latencies)
    parking = applier.parking
    return {
        "ready": ready,
        "shadow": applier.config.shadow,  # plans and reads, never writes (shadow topic)
        "pending_courses": applier.schedule.pending,
        "in_flight_courses": applier.schedule.in_flight,
        "applied_total": applier.applied_total,
        "last_apply": applier.last_apply.isoformat() if applier.last_apply else None,
        "latency_s": {
            "count": len(latencies),
            "p50": _quantile(latencies, 0.5),
            "p99": _quantile(latencies, 0.99),
        },
        "held": {course: n for course, n in sorted(applier.held.items()) if n},
        "parked_courses": {
            course: {"reason": p.reason.value, "detail": p.detail}
            for course, p in sorted(parking.courses.items())
        },
        "parked_enrolments": dict(parking.counts()),
        "parked_examples": [
            {"course": c, "user": u, "reason": p.reason.value}
            for (c, u), p in sorted(parking.users.items())[:50]
        ],
        **extra,
    }


async def serve(
    host: str,
    port: int,
    applier: Applier,
    ready: Callable[[], bool],
    extra: Callable[[], dict[str, Any]],
) -> web.AppRunner:
    async def livez(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.Response(status=200 if ok else 503, text="ready\n" if ok else "recovering\n")

    async def metrics_page(_: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def faust_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.FAUST_REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(_: web.Request) -> web.Response:
        return web.json_response(status_document(applier, ready(), extra()))

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/metrics/faust", faust_metrics)
    app.router.add_get("/status", status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
