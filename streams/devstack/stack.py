"""The whole local stack: bring up in dependency order, report, tear down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from streams.devstack.config import StackConfig
from streams.devstack.connect import Connect
from streams.devstack.errors import StackError
from streams.devstack.jars import ensure_jars, pinned_versions
from streams.devstack.kafka import Kafka
from streams.devstack.postgres import DB_NAME, DB_USER, Postgres
from streams.devstack.process import tree_rss
from streams.devstack.prometheus import STACK_JOBS, WORKER_JOB, Prometheus

CONNECTOR_NAME = "apogee-postgres"


@dataclass(frozen=True)
class PartStatus:
    """One line of ``stack status``."""

    name: str
    healthy: bool
    detail: str
    pid: int | None = None
    rss_bytes: int | None = None
    required: bool = True  # False: shown, but not part of the stack's health (the worker)


class Stack:
    """Kafka, Kafka Connect + Debezium, PostgreSQL and Prometheus as local processes."""

    def __init__(self, cfg: StackConfig | None = None) -> None:
        self.cfg = cfg or StackConfig()
        self.postgres = Postgres(self.cfg)
        self.kafka = Kafka(self.cfg)
        self.connect = Connect(self.cfg, env=self.connector_env())
        self.prometheus = Prometheus(self.cfg)

    def connector_env(self) -> dict[str, str]:
        """Values for the ``${env:…}`` references in connectors/*.json."""
        return {
            "APOGEE_DB_HOST": self.cfg.host,
            "APOGEE_DB_PORT": str(self.cfg.postgres_port),
            "APOGEE_DB_NAME": DB_NAME,
            "APOGEE_DB_USER": DB_USER,
            "APOGEE_DB_PASSWORD": self.postgres.password(),
            "KAFKA_BOOTSTRAP_SERVERS": self.cfg.bootstrap_servers,
            "CDC_TOPIC_PARTITIONS": str(self.cfg.topic_partitions),
        }

    def up(self, report: Callable[[str], None] = print) -> dict[str, float]:
        """Start every part (idempotent); returns seconds spent per step."""
        timings: dict[str, float] = {}
        steps: list[tuple[str, Callable[[], object]]] = [
            ("jars", lambda: ensure_jars(self.cfg)),
            ("postgres", self.postgres.start),
            ("kafka", self.kafka.start),
            ("connect", self.connect.start),
            ("connector", self._register),
            ("prometheus", self.prometheus.start),
            ("targets", lambda: self.prometheus.wait_targets(STACK_JOBS, 60)),
        ]
        for name, step in steps:
            t0 = time.monotonic()
            step()
            timings[name] = time.monotonic() - t0
            report(f"  {name:<11} ok ({timings[name]:.1f}s)")
        return timings

    def _register(self) -> None:
        self.connect.register()
        self.connect.wait_running(CONNECTOR_NAME, self.cfg.start_timeout_s)

    def down(self, report: Callable[[str], None] = print) -> None:
        """Stop in reverse order; never raises for a part that was not running."""
        for name, stop in [
            ("prometheus", self.prometheus.stop),
            ("connect", self.connect.stop),
            ("kafka", self.kafka.stop),
            ("postgres", self.postgres.stop),
        ]:
            try:
                report(f"  {name:<11} {'stopped' if stop() else 'not running'}")
            except StackError as exc:
                report(f"  {name:<11} FAILED to stop: {exc}")

    def status(self) -> list[PartStatus]:
        parts = [
            self._part(
                "postgres",
                self.postgres.running,
                self.postgres.pid(),
                f"{self.cfg.host}:{self.cfg.postgres_port} db={DB_NAME}",
            ),
            self._part(
                "kafka", self.kafka.running, self.kafka.proc.pid(), self.cfg.bootstrap_servers
            ),
            self._part(
                "connect", self.connect.running, self.connect.proc.pid(), self.cfg.connect_url
            ),
            self._connector_status(),
            self._part(
                "prometheus",
                self.prometheus.running,
                self.prometheus.proc.pid(),
                self.cfg.prometheus_url,
            ),
            *self._targets(),
        ]
        return parts

    def healthy(self) -> bool:
        return all(p.healthy for p in self.status() if p.required)

    def _targets(self) -> list[PartStatus]:
        """Prometheus's view of its scrape targets: the JMX exporters of Kafka and Connect
        must be up; the worker's target is up only while a worker runs."""
        jobs = (*STACK_JOBS, WORKER_JOB)
        try:
            found = self.prometheus.targets()
        except Exception as exc:
            return [
                PartStatus(f"target {job}", False, f"unknown ({type(exc).__name__})")
                for job in jobs
            ]
        parts = []
        for job in jobs:
            t = found.get(job)
            health = t.get("health", "missing") if t else "missing"
            where = t.get("scrapeUrl", "") if t else "not configured"
            error = f" ({t['lastError']})" if t and t.get("lastError") else ""
            parts.append(
                PartStatus(
                    f"target {job}",
                    health == "up",
                    f"{health} {where}{error}",
                    required=job != WORKER_JOB,
                )
            )
        return parts

    def versions(self) -> dict[str, str]:
        return pinned_versions()

    def _part(
        self, name: str, check: Callable[[], bool], pid: int | None, where: str
    ) -> PartStatus:
        try:
            ok = check()
        except Exception as exc:
            return PartStatus(name, False, f"{where}: {exc}", pid)
        return PartStatus(
            name,
            ok,
            where if ok else f"{where}: not running",
            pid,
            tree_rss(pid) if pid and ok else None,
        )

    def _connector_status(self) -> PartStatus:
        try:
            state, tasks = self.connect.state(CONNECTOR_NAME)
        except Exception as exc:
            return PartStatus(
                f"connector {CONNECTOR_NAME}", False, f"unknown ({type(exc).__name__})"
            )
        ok = state == "RUNNING" and tasks == ["RUNNING"]
        return PartStatus(f"connector {CONNECTOR_NAME}", ok, f"{state} tasks={tasks}")
