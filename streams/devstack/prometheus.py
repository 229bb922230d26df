"""Prometheus from the Debian package, scraping the reconciler worker's metrics endpoint."""

from __future__ import annotations

import shutil

import httpx
import yaml

from streams.devstack.config import StackConfig
from streams.devstack.errors import StackError
from streams.devstack.process import Managed, port_open, tail, wait_for

WORKER_JOB = "reconciler"


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
        return {
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "scrape_configs": [
                {
                    "job_name": WORKER_JOB,
                    "static_configs": [{"targets": [f"{c.host}:{c.worker_metrics_port}"]}],
                },
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"{c.host}:{c.prometheus_port}"]}],
                },
            ],
        }

    def running(self) -> bool:
        return self.proc.pid() is not None and self._ready()

    def start(self) -> None:
        if self.running():
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

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=30)

    def _ready(self) -> bool:
        return httpx.get(f"{self.cfg.prometheus_url}/-/ready", timeout=2).status_code == 200
