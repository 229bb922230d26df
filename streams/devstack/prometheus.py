"""Prometheus from the Debian package: scrapes the reconciler worker, and Kafka and Connect
through their JMX exporter agents; evaluates the chart's alert rules."""

from __future__ import annotations

import shutil
import time
from typing import Any

import httpx
import yaml

from streams.devstack.config import RULES_FILE, StackConfig
from streams.devstack.errors import StackError
from streams.devstack.process import Managed, port_open, tail, wait_for

WORKER_JOB = "reconciler"
KAFKA_JOB = "kafka"
CONNECT_JOB = "kafka-connect"
# Targets `stack up` waits for and `stack status` requires healthy (the worker is not part of
# the stack: its target is shown, and is down while no worker runs).
STACK_JOBS = (KAFKA_JOB, CONNECT_JOB)


class Prometheus:
    """Write prometheus.yml, start the server, wait for ``/-/ready``."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.proc = Managed(
            "prometheus", cfg.run_dir / "prometheus.pid", cfg.logs_dir / "prometheus.log"
        )
        self.config_file = cfg.state_dir / "config" / "prometheus.yml"
        self.data = cfg.state_dir / "prometheus" / "data"

    def config(self) -> dict[str, object]:
        c = self.cfg
        every = f"{c.scrape_interval_s}s"

        def job(name: str, port: int, path: str = "/metrics") -> dict[str, object]:
            targets = [{"targets": [f"{c.host}:{port}"]}]
            return {"job_name": name, "metrics_path": path, "static_configs": targets}

        config: dict[str, object] = {
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "scrape_configs": [
                job(WORKER_JOB, c.worker_metrics_port),
                job(f"{WORKER_JOB}-faust", c.worker_metrics_port, "/metrics/faust"),
                job(KAFKA_JOB, c.kafka_metrics_port),
                job(CONNECT_JOB, c.connect_metrics_port),
                job("prometheus", c.prometheus_port),
            ],
        }
        if RULES_FILE.exists():
            config["rule_files"] = [str(RULES_FILE)]
        return config

    def running(self) -> bool:
        return self.proc.pid() is not None and self._ready()

    def start(self) -> None:
        if self.running():
            self._reload_if_changed()
            return
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError(
                "Prometheus not found on PATH (Debian package 'prometheus'); run ./dev setup"
            )
        if self.proc.pid() is None and port_open(self.cfg.host, self.cfg.prometheus_port):
            raise StackError(
                f"Prometheus: port {self.cfg.prometheus_port} is taken by another program "
                "(set RECONCILER_STACK_PROMETHEUS_PORT)"
            )
        self.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.data.mkdir(parents=True, exist_ok=True)
        if self.proc.pid() is None:
            self.proc.spawn(
                [
                    binary,
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address={self.cfg.host}:{self.cfg.prometheus_port}",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=7d",
                ]
            )
        if not wait_for(self._ready, 60):
            raise StackError(
                f"Prometheus not ready on {self.cfg.prometheus_url}\n{tail(self.proc.log_file)}",
                self.proc.log_file,
            )

    def _reload_if_changed(self) -> None:
        """A running server started with another configuration (ports, jobs): reload it."""
        text = yaml.safe_dump(self.config(), sort_keys=False)
        if self.config_file.exists() and self.config_file.read_text() == text:
            return
        self.config_file.write_text(text)
        httpx.post(f"{self.cfg.prometheus_url}/-/reload", timeout=10).raise_for_status()

    def targets(self) -> dict[str, dict[str, Any]]:
        """Active scrape targets by job: health ("up", "down", "unknown"), lastError…"""
        body = httpx.get(
            f"{self.cfg.prometheus_url}/api/v1/targets", params={"state": "active"}, timeout=5
        ).json()
        return {t["labels"]["job"]: t for t in body["data"]["activeTargets"]}

    def wait_targets(self, jobs: tuple[str, ...], timeout_s: float) -> None:
        """Until every job's target has been scraped successfully; StackError naming the
        failing ones (with Prometheus's lastError) at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.targets()
            bad = {j: found.get(j, {}) for j in jobs if found.get(j, {}).get("health") != "up"}
            if not bad:
                return
            if time.monotonic() > deadline:
                detail = "; ".join(
                    f"{j}: {t.get('health', 'missing')} {t.get('lastError', '')}".strip()
                    for j, t in bad.items()
                )
                raise StackError(f"Prometheus scrape targets not healthy: {detail}")
            time.sleep(0.5)

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=30)

    def _ready(self) -> bool:
        return httpx.get(f"{self.cfg.prometheus_url}/-/ready", timeout=2).status_code == 200
