"""`reconciler stack` is idempotent, reports each part, and `down` leaves nothing running."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.devstack import Stack, StackConfig
from streams.devstack.process import port_open
from tests.support.backends import Services
from tests.support.ports import free_ports

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_status_reports_every_part_healthy(services: Services) -> None:
    if services.stack is None:
        pytest.skip("status is a process-backend command")
    out = _cli("stack", "status")
    assert out.returncode == 0, out.stdout + out.stderr
    parts = (
        "postgres", "kafka", "connect", "connector apogee-postgres", "prometheus",
        "target kafka ", "target kafka-connect",
    )  # fmt: skip
    for part in parts:
        assert any(line.startswith("OK") and part in line for line in out.stdout.splitlines()), part


def test_up_twice_is_a_no_op(services: Services) -> None:
    if services.stack is None:
        pytest.skip("up is a process-backend command")
    before = {p.name: p.pid for p in services.stack.status()}
    out = _cli("stack", "up")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all parts healthy" in out.stdout
    assert {p.name: p.pid for p in services.stack.status()} == before


@pytest.fixture
def private_stack(services: Services, tmp_path: Path) -> Iterator[Stack]:
    """A second stack on free ports and its own state dir (jars shared with the main one)."""
    assert services.stack is not None
    kafka, controller, connect, pg, prom, metrics, kafka_jmx, connect_jmx = free_ports(8)
    cfg = StackConfig(
        state_dir=tmp_path / "state",
        kafka_port=kafka,
        controller_port=controller,
        connect_port=connect,
        postgres_port=pg,
        prometheus_port=prom,
        worker_metrics_port=metrics,
        kafka_metrics_port=kafka_jmx,
        connect_metrics_port=connect_jmx,
        kafka_heap="256m",
    )
    cfg.state_dir.mkdir(parents=True)
    (cfg.state_dir / "jars").symlink_to(services.stack.cfg.jars_dir)
    stack = Stack(cfg)
    try:
        yield stack
    finally:
        stack.down(report=lambda _: None)
        # The cluster may live behind a link to /var/tmp (see streams.devstack.postgres).
        shutil.rmtree((cfg.state_dir / "postgres").resolve(), ignore_errors=True)


def test_parts_start_idempotently_and_down_stops_everything(private_stack: Stack) -> None:
    s, cfg = private_stack, private_stack.cfg
    parts = [s.postgres, s.kafka, s.prometheus]
    for part in parts:
        part.start()
    pids = (s.postgres.pid(), s.kafka.proc.pid(), s.prometheus.proc.pid())
    assert all(pids)
    for part in parts:  # second start: nothing new
        part.start()
    assert (s.postgres.pid(), s.kafka.proc.pid(), s.prometheus.proc.pid()) == pids

    s.down(report=lambda _: None)
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
    for port in (cfg.postgres_port, cfg.kafka_port, cfg.prometheus_port):
        assert not port_open(cfg.host, port)
    assert not s.healthy()
