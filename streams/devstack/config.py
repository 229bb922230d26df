"""Typed configuration of the local stack, read from ``RECONCILER_STACK_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
CONNECTORS_DIR = REPO_ROOT / "connectors"
# The alert rules the chart ships; the dev stack's Prometheus evaluates the same file.
RULES_FILE = REPO_ROOT / "helm" / "reconciler" / "files" / "rules" / "reconciler.rules.yaml"


class StackConfig(BaseSettings):
    """Ports, paths and sizes of the local stack. Loopback only."""

    model_config = SettingsConfigDict(env_prefix="RECONCILER_STACK_", frozen=True)

    state_dir: Path = Field(default=REPO_ROOT / ".state", description="logs, data, jars, pids")
    host: str = "127.0.0.1"
    kafka_port: int = 9092
    controller_port: int = 9093
    connect_port: int = 8083
    postgres_port: int = 5433
    prometheus_port: int = 9090
    # The reconciler worker's metrics endpoint that Prometheus scrapes.
    worker_metrics_port: int = 9464
    # The JMX exporter agents' endpoints in the Kafka and Connect JVMs (scraped too).
    kafka_metrics_port: int = 9404
    connect_metrics_port: int = 9405
    topic_partitions: int = 4
    kafka_heap: str = "512m"
    connect_heap: str = "768m"
    scrape_interval_s: int = 2
    start_timeout_s: float = 180.0
    java: str = "java"
    mvn: str = "mvn"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def jars_dir(self) -> Path:
        return self.state_dir / "jars"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://{self.host}:{self.connect_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    def metrics_url(self, port: int) -> str:
        return f"http://{self.host}:{port}/metrics"
