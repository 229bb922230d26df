"""faust-streaming on the real Kafka broker consumes Debezium events and keeps a table.

The probe app runs as a real worker process; the test changes APOGÉE rows in
PostgreSQL and reads the table's changelog topic back from Kafka.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.backends import Services
from tests.support.kafka import Record, read_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def probe(services: Services, tmp_path: Path) -> Iterator[str]:
    app_id = f"probe-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PROBE_APP_ID": app_id,
        "PROBE_BROKER": services.bootstrap_servers,
        "PROBE_DATADIR": str(tmp_path / "data"),
    }
    log = (tmp_path / "probe.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.faust_probe", "worker", "-l", "info"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield app_id
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        if proc.returncode not in (0, -15, 143):
            print((tmp_path / "probe.log").read_text()[-3000:])


def test_faust_worker_keeps_a_table_from_debezium_events(services: Services, probe: str) -> None:
    ind = random.randint(90_000_000, 99_999_999)
    kept, assigned_later, deleted = ind, ind + 1, ind + 2
    with psycopg.connect(services.postgres_dsn, autocommit=True) as conn:
        for cod in (kept, assigned_later, deleted):
            conn.execute(
                "INSERT INTO apogee.individu (cod_ind, cod_etu, lib_nom_pat_ind) "
                "VALUES (%s, %s, 'X')",
                (cod, None if cod == assigned_later else cod - 80_000_000),
            )
        conn.execute(
            "UPDATE apogee.individu SET cod_etu = %s WHERE cod_ind = %s",
            (assigned_later - 70_000_000, assigned_later),
        )
        conn.execute("DELETE FROM apogee.individu WHERE cod_ind = %s", (deleted,))

    expected = {
        str(kept): kept - 80_000_000,
        str(assigned_later): assigned_later - 70_000_000,
        str(deleted): None,
    }

    def latest(records: list[Record]) -> dict[str, object]:
        out: dict[str, object] = {}
        for r in records:
            if r.key in expected and r.value is not None:
                out[r.key] = json.loads(r.value) if isinstance(r.value, str) else r.value
        return out

    changelog = f"{probe}-cod_etu-changelog"
    records = read_until(
        services.bootstrap_servers, changelog, lambda rs: latest(rs) == expected, timeout_s=120
    )
    assert latest(records) == expected
