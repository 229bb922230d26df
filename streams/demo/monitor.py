"""What the demo watches: the worker's ``/status`` and ``/metrics``, the emulator's controls.

A :class:`Monitor` thread polls both every ``every_s`` and keeps the latest
:class:`Snapshot`; the live display and the demo's waits read it. A probe that fails (a
process starting or gone) leaves the previous figures and records the error.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Emulator", "Monitor", "Snapshot", "Worker"]


@dataclass(frozen=True)
class Snapshot:
    """The figures of one poll (worker and emulator)."""

    at: float = 0.0
    ready: bool = False
    events_in: int = 0  # CDC records read by the worker (tombstones excluded)
    applied_total: int = 0
    pending: int = 0
    in_flight: int = 0
    parked_enrolments: dict[str, int] = field(default_factory=dict)
    parked_courses: dict[str, dict[str, Any]] = field(default_factory=dict)
    parked_examples: tuple[tuple[str, str, str], ...] = ()  # (course, user, reason)
    held: int = 0
    p50: float | None = None
    p99: float | None = None
    moodle_calls: int = 0
    moodle_by_function: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def parked(self) -> int:
        return sum(self.parked_enrolments.values())

    @property
    def idle(self) -> bool:
        """Nothing waiting in the applier (timers for grace windows aside)."""
        return self.ready and self.pending == 0 and self.in_flight == 0


class Worker:
    """The worker's HTTP endpoints."""

    def __init__(self, base: str, timeout_s: float = 3.0) -> None:
        self.base = base.rstrip("/")
        self.http = httpx.Client(timeout=timeout_s)

    def ready(self) -> bool:
        return self.http.get(f"{self.base}/readyz").status_code == 200

    def status(self) -> dict[str, Any]:
        response = self.http.get(f"{self.base}/status")
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def events_in(self) -> int:
        """``reconciler_cdc_events_total`` over every table and outcome, tombstones excluded."""
        response = self.http.get(f"{self.base}/metrics")
        response.raise_for_status()
        total = 0.0
        for family in text_string_to_metric_families(response.text):
            if family.name != "reconciler_cdc_events":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("op") != "tombstone":
                    total += sample.value
        return int(total)

    def close(self) -> None:
        self.http.close()


class Emulator:
    """The emulator's ``/_emulator/*`` controls (not web services: no Moodle call counted)."""

    def __init__(self, base: str, timeout_s: float = 10.0) -> None:
        self.base = base.rstrip("/")
        self.http = httpx.Client(timeout=timeout_s)

    def healthy(self) -> bool:
        return self.http.get(f"{self.base}/_emulator/health").status_code == 200

    def stats(self) -> dict[str, Any]:
        response = self.http.get(f"{self.base}/_emulator/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def enrolments(self, userid: int) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.base}/_emulator/enrolments", params={"userid": userid})
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()
        return rows

    def creates_courses(self) -> bool:
        """Whether ``POST /_emulator/courses`` exists (405 to a GET: the route is there)."""
        return self.http.get(f"{self.base}/_emulator/courses").status_code == 405

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``kind`` = ``users`` or ``courses``; returns the created object."""
        response = self.http.post(f"{self.base}/_emulator/{kind}", json=body)
        response.raise_for_status()
        created: dict[str, Any] = response.json()
        return created

    def close(self) -> None:
        self.http.close()


class Monitor(threading.Thread):
    """Polls the worker and the emulator in the background; :attr:`latest` is the last poll."""

    def __init__(self, worker: Worker, emulator: Emulator, every_s: float = 0.5) -> None:
        super().__init__(name="demo-monitor", daemon=True)
        self.worker = worker
        self.emulator = emulator
        self.every_s = every_s
        self.latest = Snapshot()
        self._halt = threading.Event()
        self._polled = threading.Condition()

    def run(self) -> None:
        while not self._halt.is_set():
            snapshot = self.poll()
            with self._polled:
                self.latest = snapshot
                self._polled.notify_all()
            self._halt.wait(self.every_s)

    def poll(self) -> Snapshot:
        old = self.latest
        try:
            status = self.worker.status()
            events = self.worker.events_in()
            stats = self.emulator.stats()
        except (httpx.HTTPError, ValueError) as exc:
            return Snapshot(**{**old.__dict__, "at": time.monotonic(), "error": str(exc)})
        latency = status.get("latency_s", {})
        return Snapshot(
            at=time.monotonic(),
            ready=bool(status.get("ready")),
            events_in=events,
            applied_total=int(status.get("applied_total", 0)),
            pending=int(status.get("pending_courses", 0)),
            in_flight=int(status.get("in_flight_courses", 0)),
            parked_enrolments=dict(status.get("parked_enrolments", {})),
            parked_courses=dict(status.get("parked_courses", {})),
            parked_examples=tuple(
                (e["course"], e["user"], e["reason"]) for e in status.get("parked_examples", [])
            ),
            held=sum(int(n) for n in status.get("held", {}).values()),
            p50=latency.get("p50"),
            p99=latency.get("p99"),
            moodle_calls=int(stats.get("calls", 0)),
            moodle_by_function=dict(stats.get("by_function", {})),
        )

    def fresh(self, timeout_s: float = 5.0) -> Snapshot:
        """The next snapshot taken after now (so a wait sees the effect of what it just did)."""
        start = time.monotonic()
        with self._polled:
            self._polled.wait_for(lambda: self.latest.at > start, timeout_s)
            return self.latest

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.worker.close()
        self.emulator.close()
