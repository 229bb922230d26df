"""The testcontainers backend gives the same services where a Docker engine runs.

Here (no Docker engine) it skips with the reason; on a laptop or CI with Docker, it
starts Kafka, PostgreSQL, Debezium Connect and Prometheus in containers and checks a
captured change end to end.
"""

from __future__ import annotations

import random

import psycopg
import pytest

from tests.support.backends import container_services
from tests.support.kafka import end_offsets, read_until

pytestmark = pytest.mark.integration


def test_containers_backend_captures_a_change() -> None:
    with container_services() as services:  # skips here: no Docker engine
        topic = "apogee.apogee.individu"
        start = end_offsets(services.bootstrap_servers, topic)
        ind = random.randint(90_000_000, 99_999_999)
        with psycopg.connect(services.postgres_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO apogee.individu (cod_ind) VALUES (%s)", (ind,))
        records = read_until(
            services.bootstrap_servers,
            topic,
            lambda rs: any(r.key == {"cod_ind": ind} for r in rs),
            start,
            120,
        )
        assert any(r.value and r.value["op"] == "c" for r in records if r.key == {"cod_ind": ind})
