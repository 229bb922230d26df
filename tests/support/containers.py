"""testcontainers backend: the same services as the process stack, in containers.

Used only where a Docker engine is reachable; images match the process stack's pins.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from streams.devstack.connect import POSTGRES_CONNECTOR, load_connector
from tests.support.backends import Services

KAFKA_IMAGE = "apache/kafka:4.1.0"
POSTGRES_IMAGE = "postgres:15"
CONNECT_IMAGE = "quay.io/debezium/connect:3.6.1.Final"
PROMETHEUS_IMAGE = "prom/prometheus:v2.53.0"
SCHEMA_SQL = Path(__file__).resolve().parents[2] / "connectors" / "apogee-schema.sql"


@contextmanager
def started_containers() -> Iterator[Services]:  # pragma: no cover - needs Docker
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with Network() as net:
        pg = (
            PostgresContainer(POSTGRES_IMAGE, username="apogee", password="apogee", dbname="apogee")
            .with_command("postgres -c wal_level=logical")
            .with_network(net)
            .with_network_aliases("postgres")
        )
        kafka = (
            KafkaContainer(KAFKA_IMAGE).with_kraft().with_network(net).with_network_aliases("kafka")
        )
        with pg, kafka:
            import psycopg

            with psycopg.connect(
                pg.get_connection_url().replace("+psycopg2", ""), autocommit=True
            ) as c:
                c.execute(SCHEMA_SQL.read_text().encode())
            connect = (
                DockerContainer(CONNECT_IMAGE)
                .with_network(net)
                .with_env("BOOTSTRAP_SERVERS", "kafka:9092")
                .with_env("GROUP_ID", "reconciler-connect")
                .with_env("CONFIG_STORAGE_TOPIC", "_connect-configs")
                .with_env("OFFSET_STORAGE_TOPIC", "_connect-offsets")
                .with_env("STATUS_STORAGE_TOPIC", "_connect-status")
                .with_env("CONNECT_CONFIG_PROVIDERS", "env")
                .with_env(
                    "CONNECT_CONFIG_PROVIDERS_ENV_CLASS",
                    "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
                )
                .with_env("APOGEE_DB_HOST", "postgres")
                .with_env("APOGEE_DB_PORT", "5432")
                .with_env("APOGEE_DB_NAME", "apogee")
                .with_env("APOGEE_DB_USER", "apogee")
                .with_env("APOGEE_DB_PASSWORD", "apogee")
                .with_env("CDC_TOPIC_PARTITIONS", "4")
                .with_exposed_ports(8083)
            )
            prom = DockerContainer(PROMETHEUS_IMAGE).with_exposed_ports(9090)
            with connect, prom:
                url = f"http://{connect.get_container_host_ip()}:{connect.get_exposed_port(8083)}"
                _register(url)
                yield Services(
                    bootstrap_servers=kafka.get_bootstrap_server(),
                    connect_url=url,
                    postgres_dsn=pg.get_connection_url().replace(
                        "postgresql+psycopg2", "postgresql"
                    ),
                    prometheus_url=f"http://{prom.get_container_host_ip()}:{prom.get_exposed_port(9090)}",
                    worker_metrics_host="host.docker.internal",
                    worker_metrics_port=9464,
                )


def _register(url: str) -> None:  # pragma: no cover - needs Docker
    spec = load_connector(POSTGRES_CONNECTOR)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            r = httpx.put(
                f"{url}/connectors/{spec['name']}/config", json=spec["config"], timeout=10
            )
            if r.status_code in (200, 201):
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"could not register {json.dumps(spec['name'])} on {url}")
