"""Bad input on the APOGÉE topics while staff keep editing: the worker never stops, every
malformed record is on the dead-letter topic with its reason, and Moodle still equals SQL.

10,000 × scale malformed records (:mod:`tests.support.malformed`: wrong types, missing fields,
unknown ops, huge values, invalid UTF-8, not JSON, unknown tables, tombstones) are produced
onto the three CDC topics, interleaved with Debezium's records of a steady APOGÉE load.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, Message, Producer

from schemas.deadletter import DeadLetterRecord
from tests.support.backends import Services
from tests.support.e2e import Run, e2e_run, seed, wait_until
from tests.support.faults import (
    WORKER_ENV,
    Load,
    converge,
    log_problems,
    metric_total,
    report,
    running,
)
from tests.support.kafka import read_until
from tests.support.malformed import Bad, malformed

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ELEMENTS = [f"B{k}" for k in range(6)]
STUDENTS = 120
RATE = 8.0  # APOGÉE transactions per second, during the flood
RECORDS = 10_000  # malformed records, × scale
CHUNK = 500  # produced at once, then the worker's liveness is checked
OUTSIDE = 99_000_000  # COD_IND of the malformed records' keys: no test's slice


@pytest.fixture
def run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with e2e_run(services, tmp_path_factory.mktemp("bad-input"), size=STUDENTS) as run:
        run.start_emulator(seed(run.slice, ELEMENTS, STUDENTS))
        yield run


Where = tuple[str, int, int]


class Flood:
    """Produces the bad records and remembers where each landed."""

    def __init__(self, run: Run) -> None:
        self.producer = Producer(
            {"bootstrap.servers": run.services.bootstrap_servers, "linger.ms": 20}
        )
        self.landed: dict[Where, Bad] = {}
        self.errors: list[str] = []

    def send(self, bad: Bad) -> None:
        def delivered(error: KafkaError | None, msg: Message) -> None:
            if error is not None:
                self.errors.append(f"{bad.kind}: {error}")
                return
            self.landed[(msg.topic(), msg.partition(), msg.offset())] = bad  # type: ignore[index]

        while True:
            try:
                self.producer.produce(bad.topic, bad.value, bad.key, on_delivery=delivered)
                return
            except BufferError:  # the local queue is full: let it drain
                self.producer.poll(0.5)

    def flush(self) -> None:
        left = self.producer.flush(60)
        assert left == 0 and not self.errors, f"{left} undelivered; {self.errors[:5]}"


def livez(run: Run) -> float:
    """Seconds the worker's liveness probe took to answer 200."""
    started = time.monotonic()
    with urllib.request.urlopen(f"{run.worker_url}/livez", timeout=5) as response:
        assert response.status == 200
    return time.monotonic() - started


async def test_malformed_records_are_dead_lettered_and_valid_traffic_converges(
    run: Run, scale: int
) -> None:
    worker = run.start_worker(**WORKER_ENV)
    pid = worker.pid
    count = RECORDS * scale
    flood = Flood(run)
    load = Load(run, ELEMENTS, STUDENTS, RATE, seed=7)
    started = time.monotonic()
    slowest = 0.0
    with running(load):
        wait_until(lambda: run.status()["applied_total"] > 0, 120, "the first changes applied")
        for n, bad in enumerate(malformed(count, OUTSIDE, seed=scale), 1):
            flood.send(bad)
            if n % CHUNK == 0:
                flood.producer.poll(0)
                slowest = max(slowest, livez(run))
        flood.flush()
        produced = time.monotonic() - started
        load.stop()

    expected = {where: bad.reason for where, bad in flood.landed.items() if bad.reason}
    dead = read_until(
        run.services.bootstrap_servers,
        f"{run.app_id}.deadletter",
        lambda records: len(records) >= len(expected),
        timeout_s=300,
    )
    drained = time.monotonic() - started
    await converge(run, ELEMENTS, 180, "Moodle equals SQL after the flood")

    letters = [DeadLetterRecord.model_validate_json(json.dumps(r.value)) for r in dead]
    found = {(d.topic, d.partition, d.offset): d.reason for d in letters}
    injected = Counter(bad.reason.value for bad in flood.landed.values() if bad.reason)
    lettered = Counter(d.reason.value for d in letters)
    assert len(letters) == len(found), "each bad record dead-lettered once"
    assert lettered == injected, "dead letters by reason"
    assert found == expected, "each bad record dead-lettered with its own reason"
    for d in letters:  # kept whole (undecodable bytes escaped, values beyond 512 KiB cut)
        bad = flood.landed[(d.topic, d.partition, d.offset)]
        assert bad.value is not None and d.value is not None
        assert d.value == bad.value.decode("utf-8", "backslashreplace"), d.detail[:200]
        assert d.key == (None if bad.key is None else bad.key.decode("utf-8", "backslashreplace"))
    tombstones = sum(1 for bad in flood.landed.values() if bad.reason is None)
    ignored = metric_total(run.worker_url, "reconciler_cdc_events_total", outcome="ignored")
    assert ignored >= tombstones, "tombstones are counted as ignored (Debezium writes them too)"

    assert worker.alive() and worker.pid == pid, f"the worker exited: {worker.log}"
    assert livez(run) < 5
    problems = log_problems(run)
    assert not problems, "no agent crashed or restarted:\n" + "\n".join(problems[:20])
    kinds = Counter(bad.kind for bad in flood.landed.values())
    report(
        f"bad input: {count} malformed records ({dict(kinds)}) produced in {produced:.0f} s "
        f"amid {load.transactions} APOGÉE transactions; all dead-lettered {drained:.0f} s "
        f"after the start: {dict(lettered)}; {tombstones} tombstones ignored; worker pid "
        f"{pid} throughout, /livez slowest {slowest * 1000:.0f} ms; Moodle equals SQL"
    )
